"""Send through the provider APIs: digest's ledger loop against a local stand-in server.

    .venv/bin/python benchmarks/send_api.py [--messages 10000] [--runs 3]

A small server in a child process answers Postmark's /email/batch, SendGrid's
/v3/mail/send and Mailgun's /v3/<domain>/messages the way the providers do (it reads
and parses every request body, then answers at once). For each provider the script
runs `deliver_digest` over a fresh ledger of N subscribers with the provider's largest
batch and prints the median rate, the requests made and this process's peak memory.
The server is local, so this measures digest's own cost per message, not a provider's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from send_smtp import KEY, SECRET, free_port, make_ledger, reset, template_of_size  # noqa: E402

from digest.deliver import DeliveryPolicy, deliver_digest  # noqa: E402
from digest.mail.api import (  # noqa: E402
    ApiTransport,
    MailgunTransport,
    PostmarkTransport,
    SendGridTransport,
)
from digest.subscribers import make_token  # noqa: E402


async def postmark(request: Request) -> Response:
    messages = json.loads(await request.body())
    return JSONResponse(
        [{"ErrorCode": 0, "Message": "OK", "MessageID": f"m{n}"} for n in range(len(messages))]
    )


async def sendgrid(request: Request) -> Response:
    json.loads(await request.body())
    return Response(status_code=202, headers={"X-Message-Id": "batch"})


async def mailgun(request: Request) -> Response:
    parse_qsl((await request.body()).decode())
    return JSONResponse({"id": "<batch@mg.example.org>", "message": "Queued. Thank you."})


APP = Starlette(
    routes=[
        Route("/email/batch", postmark, methods=["POST"]),
        Route("/v3/mail/send", sendgrid, methods=["POST"]),
        Route("/v3/{domain}/messages", mailgun, methods=["POST"]),
    ]
)


def serve(port: int) -> None:
    uvicorn.run(APP, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def transport(provider: str, url: str, concurrency: int) -> ApiTransport:
    if provider == "postmark":
        return PostmarkTransport("key", base_url=url, concurrency=concurrency)
    if provider == "sendgrid":
        return SendGridTransport("key", base_url=url, concurrency=concurrency)
    return MailgunTransport("key", domain="mg.example.org", base_url=url, concurrency=concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    template, size = template_of_size(20_000)
    port = free_port()
    server = multiprocessing.Process(target=serve, args=(port,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/")
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    print(f"{args.messages} messages of {size} bytes, {args.concurrency} requests in parallel")
    try:
        with tempfile.TemporaryDirectory() as folder:
            engine, digest_id = make_ledger(Path(folder), args.messages)
            for provider in ("sendgrid", "mailgun", "postmark"):
                times = []
                for _ in range(args.runs):
                    reset(engine, digest_id)
                    api = transport(provider, url, args.concurrency)
                    started = time.perf_counter()
                    report = deliver_digest(
                        engine,
                        digest_id=digest_id,
                        digest_key=KEY,
                        template=template,
                        transport=api,
                        token_for=lambda sid: make_token(SECRET, sid, "unsubscribe"),
                        policy=DeliveryPolicy(batch_size=1000, concurrency=args.concurrency),
                    )
                    times.append(time.perf_counter() - started)
                    api.close()
                    if report.sent != args.messages:
                        raise SystemExit(f"{provider}: {report}")
                batches = -(-args.messages // min(1000, api.max_batch))
                rate = args.messages / statistics.median(times)
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"  {provider:9} {rate:8,.0f} messages/s  ({batches} requests per run; "
                    f"peak RSS so far {peak:.0f} MB)"
                )
            engine.dispose()
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
