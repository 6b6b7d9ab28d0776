"""Flash sales (秒杀): sales of a scarce product at thousands of orders a second, never oversold.

The buy request is answered by a fast path (`fastpath.py`) that admits the member from a signed sale
pass and asks the gate (`gate.py`: one Lua script on Redis, or one SQL transaction on the embedded tier)
to take the stock; the persister (`persister.py`) writes the accepted buys to the database in batches.
"""
