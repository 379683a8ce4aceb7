"""Each port's contract, as a test suite an adapter of yours subclasses (issue #23).

An outside adapter proves itself against the same checks genstudio's own adapters
pass (genstudio's tests/contract/ subclass these very classes). Subclass the contract
in a test module of yours (a name starting with ``Test``), override its factory
fixture, and pytest runs every check over your adapter::

    from genstudio.testing.contracts.storage import MediaStorageContract

    class TestS3Storage(MediaStorageContract):
        @pytest.fixture
        def storage_factory(self, s3_server):  # a fixture of yours
            return lambda: S3Storage(endpoint=s3_server.url, bucket="media")

The contracts (one module each): ``gpu.GpuProviderContract``,
``storage.MediaStorageContract``, ``stores.AppleStoreContract`` and
``stores.GoogleStoreContract``, ``push.PushSenderContract``,
``moderation.ClassifierContract`` (with ``TextClassifierContract`` and
``ImageClassifierContract`` for what a classifier reads) and
``analytics.AnalyticsContract``. Their checks are async: they need pytest-asyncio
(``genstudio[testing]``), in either of its modes.
"""
