"""genstudio's testing kit, for teams that build on genstudio (issue #23).

Installed with ``pip install genstudio[testing]``; its pytest plugin is registered as a
``pytest11`` entry point, so its fixtures (all named ``genstudio_*``) are there in any
project that has genstudio installed. ``docs/testing-kit.md`` is the guide.

- ``genstudio.testing.application``: ``MemoryApplication``, genstudio's use cases on the
  in-memory adapters with a clock that moves only when told to, and ``Users`` (builders
  for a user with credits or a subscription);
- ``genstudio.testing.gpu``: ``ScriptedGpu``, a GPU provider told what each job does
  (succeed, fail, hang, report progress, be down);
- ``genstudio.testing.http``: ``MemoryHttpApp``, the Litestar app on those adapters,
  with an HTTP client and a token factory;
- ``genstudio.testing.stores``: the App Store and Google Play stand-ins, signing with a
  test chain, with genstudio's own store adapters configured to trust them;
- ``genstudio.testing.standins``: the loopback stand-ins themselves;
- ``genstudio.testing.contracts``: each port's contract suite, for an adapter of your own.

Nothing is imported here: importing the package (as pytest does at start) costs nothing.
"""
