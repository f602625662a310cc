"""The edge client (installed as ``fedseed.client``); its gRPC loop arrives with the federation work."""
