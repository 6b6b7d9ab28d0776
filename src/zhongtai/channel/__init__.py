"""Channel partners of a brand: dealers (经销商) with their territories, the stores (门店) they supply,
shopping guides (导购) of each store, and the partner accounts they sign in with. Channel scans,
partner inventory and diversion alerts build on this model."""
