"""The README's twenty-line worker, extracted from README.md and run exactly as written (its own
process, configured by the environment it documents) against a real stack (`switchboard up`): it
completes a run, retries one that raises Retryable, publishes to its agent's stream, and exits 0 on
SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from datetime import timedelta

import grpc

from switchboard.interactions.v1 import event_service_pb2 as events_pb
from switchboard.interactions.v1 import event_service_pb2_grpc
from switchboard.runs.v1 import run_service_pb2 as pb
from switchboard.runs.v1 import run_service_pb2_grpc
from tests.conftest import REPO_ROOT, base_env
from tests.e2e.test_up import start_stack, stop_stack, until_serving


def readme_worker() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- worker:begin -->\n", 1)[1].split("<!-- worker:end -->", 1)[0]
    assert block.startswith("```python\n") and block.rstrip().endswith("```")
    code = block.removeprefix("```python\n").rstrip().removesuffix("```")
    assert len(code.strip().splitlines()) <= 20, "the README promises a worker in twenty lines"
    return code


async def until_finished(stub, run_id: str, metadata) -> pb.Run:
    # A run's end is not announced on any stream: ask until it is there (bounded).
    async with asyncio.timeout(30):
        while True:
            run = (await stub.GetRun(pb.GetRunRequest(run_id=run_id), metadata=metadata)).run
            if run.status in (pb.RUN_STATUS_COMPLETED, pb.RUN_STATUS_FAILED, pb.RUN_STATUS_CANCELLED):
                return run
            await asyncio.sleep(0.05)


async def test_the_readmes_worker_runs_as_written(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(readme_worker())
    stack = await start_stack(tmp_path)
    worker = None
    try:
        for service in ("identity", "interactions", "runs"):
            await until_serving(stack.ports[service])
        org, agent = str(uuid.uuid4()), str(uuid.uuid4())
        token = stack.tokens.issue(organization_id=org, agent_id=agent, connection_id=None, ttl=timedelta(minutes=10)).token
        metadata = (("authorization", f"Bearer {token}"),)
        env = base_env(
            WORKER_TOKEN=token,
            RUNS_ADDRESS=f"127.0.0.1:{stack.ports['runs']}",
            EVENTS_ADDRESS=f"127.0.0.1:{stack.ports['interactions']}",
            EDGE_URL=f"http://127.0.0.1:{stack.ports['edge']}",
        )
        worker = await asyncio.create_subprocess_exec(sys.executable, str(script), cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.ports['runs']}") as runs_channel, grpc.aio.insecure_channel(
            f"127.0.0.1:{stack.ports['interactions']}"
        ) as events_channel:
            runs = run_service_pb2_grpc.RunServiceStub(runs_channel)
            plain = await runs.EnqueueRun(pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION, subject_id="feed-1"), metadata=metadata)
            flaky = await runs.EnqueueRun(
                pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_SYNC, subject_id="feed-2", payload_json=json.dumps({"flaky": True})),
                metadata=metadata,
            )
            done = await until_finished(runs, plain.run.id, metadata)
            assert done.status == pb.RUN_STATUS_COMPLETED and json.loads(done.result_json) == {"done": "feed-1"}
            retried = await until_finished(runs, flaky.run.id, metadata)
            assert retried.status == pb.RUN_STATUS_COMPLETED and retried.attempt == 2
            events = event_service_pb2_grpc.EventServiceStub(events_channel).Subscribe(
                events_pb.SubscribeRequest(stream=f"agents/{agent}", organization_id=org), metadata=metadata
            )
            texts = []
            async with asyncio.timeout(10):
                while len(texts) < 3:
                    texts.append(json.loads((await events.read()).event.payload_json)["text"])
            events.cancel()
            assert sorted(texts) == ["working on feed-1", "working on feed-2", "working on feed-2"]
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(35):
            _, stderr = await worker.communicate()
        assert worker.returncode == 0, stderr.decode()[-3000:]
    finally:
        if worker is not None and worker.returncode is None:
            worker.kill()
            await worker.wait()
        assert await stop_stack(stack) == 0
