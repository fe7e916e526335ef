"""The randomness service behind ``qitcore serve``: one process owns the QRNGs and serves their
health-tested, extracted bytes to every process of a host, the kernel's pool and the network.

- :mod:`~qitcore.service.pool`: the devices (a thread each) and the bytes they have ready; each
  byte leaves the pool once;
- :mod:`~qitcore.service.config`: what a daemon runs (TOML and command line);
- :mod:`~qitcore.service.stats`: the counters every front end shares;
- :mod:`~qitcore.service.daemon`: the process: the pool, the front ends, signals.

Front ends (the Unix socket, HTTPS, the kernel feed, metrics) live in modules of their own,
imported only when a daemon runs them. Nothing here is imported by ``import qitcore``.
"""
