"""Measured error rates: protocol readers, 1:1 and 1:N metrics, group figures, HTML reports.

Submodules are imported on demand (``report``/``plots`` pull in matplotlib):
``metrics`` and ``openset`` (pure numpy), ``protocols`` (CSV readers), ``pairs``,
``identify`` and ``impostors`` (run a protocol), ``report`` (self-contained HTML).
"""
