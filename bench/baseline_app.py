"""The baseline: a plain FastAPI app with hand-written endpoints over the same workloads.

Run it exactly like hayhooks is run: ``uvicorn bench.baseline_app:app --port Q [--workers N]``.
The paths mirror hayhooks' ``POST /{name}/run`` so one load script fits both servers.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel

from bench.workloads import CPU_ITERATIONS, cpu_work, echo, io_wait


class EchoRequest(BaseModel):
    text: str


class EchoResponse(BaseModel):
    result: str


class CpuRequest(BaseModel):
    iterations: int = CPU_ITERATIONS


class CpuResponse(BaseModel):
    result: int


class WhoResponse(BaseModel):
    pid: int


app = FastAPI(title="bench baseline")


@app.get("/health")
async def health() -> WhoResponse:
    return WhoResponse(pid=os.getpid())


@app.post("/echo/run")
def echo_sync(body: EchoRequest) -> EchoResponse:
    # sync `def`: FastAPI runs it in its threadpool, as hayhooks runs a sync run_api on its pool.
    return EchoResponse(result=echo(body.text))


@app.post("/echo_async/run")
async def echo_async(body: EchoRequest) -> EchoResponse:
    return EchoResponse(result=echo(body.text))


@app.post("/cpu/run")
def cpu(body: CpuRequest) -> CpuResponse:
    return CpuResponse(result=cpu_work(body.iterations))


@app.post("/io_sync/run")
def io_sync(body: EchoRequest) -> EchoResponse:
    # sync `def` that blocks 50 ms: FastAPI's default thread pool (anyio, 40 threads).
    return EchoResponse(result=io_wait(body.text))
