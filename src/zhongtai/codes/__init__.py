"""One item, one code (一物一码): code batches, unguessable serials and hidden PINs, SSCCs for cases and
pallets, GS1 Digital Link URIs, print files, and the state of every code."""
