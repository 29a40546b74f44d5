"""Sample store plugin ``lmdb``: sharded LMDB + msgpack records with JPEG images, resumable builds.

The store interface (what ``babyvlm data`` and the pretraining dataset use)::

    store = babyvlm.build("store", "lmdb", path=DIR)
    writer = store.writer(settings=..., shard_index=0, shard_count=1, commit_every=256)
    writer.done_groups(); writer.done_fingerprints()  # complete groups (-> input fingerprint): skipped on resume
    writer.begin_group(rec, fingerprint); writer.add(fmt, local, sample); writer.finish_group(summary)
    writer.finalize(build=..., source=...)  # drops leftovers of unfinished groups (writer.removed_leftovers),
                                            # then writes manifest.json atomically
    store.manifest(); store.list_keys(formats); store.get(shard, key); store.iter_samples()
    store.verify(); store.stats(); type(store).merge(inputs, out)
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["LMDBStore", "VerifyReport"]
__getattr__ = lazy_exports(__name__, {"LMDBStore": "store", "VerifyReport": "verify"})


@hookimpl
def register_stores(register):
    register("lmdb", "babyvlm.plugins.lmdb_store.store:LMDBStore")
