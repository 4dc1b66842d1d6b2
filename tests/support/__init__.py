"""Helpers shared by the test modules (``from support import ...``); fixtures stay in conftest.py.

* :mod:`support.waiting`: a free port, the one bounded wait (:func:`wait_for`), stopping and
  watching processes, waiting for a server process to answer HTTP.
* :mod:`support.ws`: the one hand-written WebSocket client (:class:`RawWS`: any frame, even an
  invalid one, a tiny receive buffer, reading nothing) with Socket.IO and Primus framing over it.
* :mod:`support.node`: Node scripts with the npm clients of tests/js, run to the end or streamed.
* :mod:`support.services`: the conformance suite's data and its services (memory, SQL engines).
"""
from .waiting import free_port, terminate, wait_for

__all__ = ['free_port', 'terminate', 'wait_for']
