"""The backend contract against a real three-node Redis Cluster.

One hash per kernel means one slot per kernel, so every Lua script touches a single node; the
batch write is pipelined per node. The kernels below are spread until every node holds some.
"""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator

import pytest
from redis.cluster import RedisCluster

from solara_persisted.backends import create_backend
from solara_persisted.backends.base import META_FIELD, FlushRequest
from solara_persisted.backends.redis import RedisBackend, route_scripts_by_key
from solara_persisted.config import Settings
from solara_persisted.errors import BackendError

pytestmark = pytest.mark.cluster

OWNER = b"key1" + hashlib.sha256(b"owner").digest()[:16]
TAG_DIGEST = hashlib.sha256(b"v1").digest()[:4]
TTL = 60.0
KERNELS = 30


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def backend(redis_cluster_url: str, prefix: str) -> Iterator[RedisBackend]:
    backend = create_backend(Settings(backend="redis", url=redis_cluster_url, prefix=prefix))
    assert isinstance(backend, RedisBackend)
    yield backend
    backend.close()


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[RedisCluster]:
    """A plain cluster client to inspect where keys landed."""
    client = RedisCluster.from_url(redis_cluster_url.replace("redis+cluster://", "redis://"))
    yield client
    client.close()


def flush_request(kernel_id: str, generation: int, value: bytes) -> FlushRequest:
    return FlushRequest(
        kernel_id=kernel_id,
        generation=generation,
        identity=OWNER,
        schema_tag="v1",
        fields={"k": value},
        ttl=TTL,
    )


def test_contract_holds_for_kernels_on_every_node(
    backend: RedisBackend, cluster: RedisCluster, prefix: str
) -> None:
    kernels = [str(uuid.uuid4()) for _ in range(KERNELS)]
    nodes = {cluster.get_node_from_key(prefix + kernel_id).name for kernel_id in kernels}
    assert len(nodes) == 3, "the kernels must spread over all three primaries"

    for kernel_id in kernels:
        assert backend.takeover(kernel_id, [OWNER], "v1", TTL).reason == "miss"
    assert all(cluster.exists(prefix + kernel_id) == 0 for kernel_id in kernels), "a miss writes nothing"

    assert (
        backend.flush_many([flush_request(kernel_id, 1, b"first") for kernel_id in kernels])
        == [True] * KERNELS
    )
    for kernel_id in kernels:
        assert cluster.hget(prefix + kernel_id, META_FIELD) == OWNER + TAG_DIGEST + b"1"
        takeover = backend.takeover(kernel_id, [OWNER], "v1", TTL)
        assert (takeover.reason, takeover.generation, dict(takeover.fields)) == (
            "restored",
            2,
            {"k": b"first"},
        )

    # Half the batch carries the superseded generation: those are fenced out, the rest written.
    batch = [flush_request(kernel_id, 1 if i % 2 else 2, b"second") for i, kernel_id in enumerate(kernels)]
    assert backend.flush_many(batch) == [i % 2 == 0 for i in range(KERNELS)]
    for i, kernel_id in enumerate(kernels):
        assert cluster.hget(prefix + kernel_id, "k") == (b"first" if i % 2 else b"second")
        assert backend.peek_generation(kernel_id) == 2

    stranger = b"key1" + hashlib.sha256(b"stranger").digest()[:16]
    assert backend.takeover(kernels[0], [stranger], "v1", TTL).reason == "identity-mismatch"
    assert backend.takeover(kernels[0], [OWNER], "v2", TTL).reason == "schema-reset"

    assert backend.delete(kernels[1], 1) is False
    assert backend.delete(kernels[1], 2) is True
    assert backend.delete(kernels[2]) is True
    assert backend.peek_generation(kernels[1]) is None
    assert backend.peek_generation(kernels[2]) is None
    for kernel_id in kernels:
        backend.delete(kernel_id)


def test_flush_many_is_one_round_trip_per_node(backend: RedisBackend, cluster: RedisCluster) -> None:
    """Counted on the servers: each node reads its share of the batch once (see test_backends).

    That needs the pipeline to route EVALSHA by its key without asking the server, which relies
    on a private redis-py attribute; without it the batch is still correct, only slower.
    """
    if not route_scripts_by_key(cluster.pipeline(transaction=False)):
        pytest.skip(
            "this redis-py's cluster pipeline has no _policy_resolver: flush_many falls back to one "
            "COMMAND GETKEYS round trip per script call, so one round trip per node cannot hold"
        )
    kernels = [str(uuid.uuid4()) for _ in range(KERNELS)]
    assert (
        backend.flush_many([flush_request(kernel_id, 1, b"v") for kernel_id in kernels]) == [True] * KERNELS
    )

    def reads() -> int:
        per_node = cluster.info("stats", target_nodes=RedisCluster.PRIMARIES)
        return sum(stats["total_reads_processed"] for stats in per_node.values())

    before = reads()
    assert (
        backend.flush_many([flush_request(kernel_id, 1, b"w") for kernel_id in kernels]) == [True] * KERNELS
    )
    # one read of the batch per node, plus the INFO that takes the second reading on each node
    assert reads() - before == 3 + 3
    for kernel_id in kernels:
        backend.delete(kernel_id)


def test_flush_many_reloads_scripts_a_node_forgot(backend: RedisBackend, cluster: RedisCluster) -> None:
    kernels = [str(uuid.uuid4()) for _ in range(9)]
    assert backend.flush_many([flush_request(kernel_id, 1, b"v") for kernel_id in kernels]) == [True] * 9
    cluster.script_flush()  # on every primary, as after a restart or failover
    assert backend.flush_many([flush_request(kernel_id, 1, b"w") for kernel_id in kernels]) == [True] * 9
    cluster.script_flush()
    assert backend.takeover(kernels[0], [OWNER], "v1", TTL).fields == {"k": b"w"}
    for kernel_id in kernels:
        backend.delete(kernel_id)


def test_eviction_policy_and_ping_on_a_cluster(backend: RedisBackend) -> None:
    backend.ping()
    assert backend.eviction_policy() == "noeviction"


def test_unreachable_cluster_raises_backend_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    backend = RedisBackend(
        Settings(backend="redis", url=f"redis+cluster://127.0.0.1:{closed}", connect_timeout=0.2)
    )
    with pytest.raises(BackendError, match="redis takeover at redis\\+cluster://"):
        backend.takeover(str(uuid.uuid4()), [OWNER], "v1", TTL)
    with pytest.raises(BackendError, match="redis flush_many"):
        backend.flush_many([flush_request(str(uuid.uuid4()), 1, b"v")])
