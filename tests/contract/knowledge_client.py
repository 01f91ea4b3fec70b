#!/usr/bin/env python3
"""An independent client of proto/knowledge.proto.

Its code is generated here, from the .proto file alone, with grpcio-tools: nothing of the Rust
contract crate is used. It registers a database, lists it, reads the configuration and the stats,
and prints what it saw as one JSON object. Usage: knowledge_client.py HOST:PORT PROTO_DIR
"""
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def main(address: str, proto_dir: str) -> int:
    out = tempfile.mkdtemp(prefix="knowledge-client-")
    proto = os.path.join(proto_dir, "knowledge.proto")
    if protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}", proto]) != 0:
        print(f"protoc failed on {proto}", file=sys.stderr)
        return 2
    sys.path.insert(0, out)
    import knowledge_pb2 as pb  # noqa: E402  (generated above)
    import knowledge_pb2_grpc as rpc  # noqa: E402

    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = rpc.KnowledgeServiceStub(channel)

    registered = stub.RegisterDatabase(
        pb.RegisterDatabaseRequest(
            database_id="contract_db",
            connection_string="postgres://app:pw@db.example:5432/shop",
            database_type="postgres",
            database_name="shop",
            enabled=True,
        ),
        timeout=5,
    )
    listed = stub.ListDatabases(pb.ListDatabasesRequest(enabled_only=True), timeout=5)
    config = stub.GetSystemConfig(pb.GetSystemConfigRequest(), timeout=5)
    stats = stub.GetSystemStats(pb.GetSystemStatsRequest(), timeout=5)

    print(
        json.dumps(
            {
                "registered": registered.success,
                "databases": [
                    {
                        "id": d.database_id,
                        "connection_string": d.connection_string,
                        "redacted": d.connection_string_redacted,
                    }
                    for d in listed.databases
                ],
                "connection_pool_critical": config.thresholds.connection_pool_critical,
                "execution_mode": config.execution_mode,
                "total_databases": stats.total_databases,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
