"""The thread streaming protocol ("event streaming"; the SDK's ``client.threads.stream``).

- :mod:`graphdock.protocol.wire`: protocol events as they go out (from the event log's
  events), channels and subscription filters;
- :mod:`graphdock.protocol.legacy`: the events of runs started with the v1 API, as protocol
  events;
- :mod:`graphdock.protocol.streams`: a thread's protocol event stream (replay from ``since``,
  then live);
- :mod:`graphdock.protocol.commands`: the commands (``run.start``, ``input.respond``, the state
  commands, ...), each a call of the services with the request's auth.

The wire types are langchain-protocol's (``langchain_protocol``). ``api/`` routes and frames;
everything here is transport-independent.
"""
