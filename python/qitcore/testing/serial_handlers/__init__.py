"""pyserial URL handlers (``emu://``) emulating serial QRNGs; see :mod:`.protocol_emu`."""
