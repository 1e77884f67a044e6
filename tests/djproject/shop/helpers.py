raise RuntimeError("autodiscovery must not import this module")
