"""The edge client (installed as ``fedseed.client``): joins a coordinator, trains, and follows the log."""
