"""``TritonSession``: ``BatchedSession``'s interface, with the model on a Triton server.

Many single-event callers, batched by the server: each ``predict`` or
``apredict`` sends its event as one request, and the server's dynamic batcher
(``dynamic_batching`` in the package's ``config.pbtxt``) merges the requests of
concurrent callers into batches. Analysis code switches between in-process and
remote inference by one line::

    session = BatchedSession("pkg")
    session = TritonSession("pkg", url="127.0.0.1:8001")

Both are ``EventSession``s: each event is checked and preprocessed here with
the package's ``preprocess.json``, exactly as in process (Triton's backends
run the raw model), and a result is the output row or {output name: row}.
The model's inputs, outputs and ``max_batch_size`` come from the server, so a
client cannot disagree with what it serves.

Needs numpy and tritonclient only (no onnxruntime, no torch); tritonclient is
imported when a session is made. Its gRPC client is thread-safe and shared by
all threads; its HTTP client is not, so each thread gets its own; coroutines
use an asyncio client per event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from batchml.inference.events import EventSession, ModelIO
from batchml.inference.spec import (
    Event,
    Feeds,
    InputSpec,
    OnNaN,
    Result,
    check_on_nan,
    event_shape,
    feedable_dtype,
    input_spec,
    read_preprocess,
)

Protocol = Literal["grpc", "http"]
TRITONCLIENT_INSTALL = "pip install 'tritonclient[grpc,http]'"


class TritonSession(EventSession):
    """A package's model served by Triton at ``url``, called like a BatchedSession.

    Thread-safe: ``predict`` from any number of threads, ``apredict`` from any
    number of coroutines, ``predict_many`` for a chunk (sent in slices of the
    model's ``max_batch_size``). ``url`` is host:port of the server's gRPC or
    HTTP endpoint (``protocol``), as ``batchml package serve`` prints them.
    ``on_nan`` is BatchedSession's: NaN replaced as CMSSW does, or refused.
    """

    def __init__(
        self,
        package_dir: str | Path,
        url: str = "127.0.0.1:8001",
        protocol: Protocol = "grpc",
        model_version: str = "",
        timeout_s: float = 60.0,
        on_nan: OnNaN = "replace",
    ) -> None:
        if protocol not in ("grpc", "http"):
            raise ValueError(f"protocol={protocol!r} must be 'grpc' or 'http'")
        check_on_nan(on_nan)
        folder = Path(package_dir)
        self.model_name = _model_name(folder)
        self.model_version = model_version
        self.url = url
        self.protocol: Protocol = protocol
        self.timeout_s = timeout_s
        # gRPC times each call; HTTP clients are given the timeout when made
        self._per_call = {"client_timeout": timeout_s} if protocol == "grpc" else {}
        self._module = _client_module(protocol)
        self._local = threading.local()
        self._shared = self._module.InferenceServerClient(url) if protocol == "grpc" else None
        self._async: dict[asyncio.AbstractEventLoop, Any] = {}
        self._opened: list[Any] = []
        self._guard = threading.Lock()
        metadata, config = self._describe()
        where = f"model {self.model_name!r} on the Triton server at {url}"
        io = ModelIO(
            _input_specs(metadata["inputs"], read_preprocess(folder), where),
            [o["name"] for o in metadata["outputs"]],
            on_nan,
        )
        super().__init__(io, max(1, int(config.get("max_batch_size", 0))), self._infer)

    # -- one event, from threads ----------------------------------------------------------

    def predict(self, event: Event) -> Result:
        """The model's output for one event; the server batches it with other callers'."""
        return self._one(event)

    def _infer(self, feeds: Feeds) -> list[np.ndarray]:
        inputs, outputs = self._request(self._module, feeds)
        answer = self._client().infer(
            self.model_name,
            inputs,
            model_version=self.model_version,
            outputs=outputs,
            **self._per_call,
        )
        return [answer.as_numpy(name) for name in self.output_names]

    def _client(self) -> Any:
        if self._shared is not None:
            return self._shared
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._module.InferenceServerClient(
                self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
            )
            self._local.client = client
            with self._guard:
                self._opened.append(client)
        return client

    # -- one event, from coroutines --------------------------------------------------------

    async def apredict(self, event: Event) -> Result:
        """Like ``predict``, for coroutines: the loop waits on the server, not on a thread.

        Over gRPC the shared client's callback settles the caller's future; over
        HTTP each event loop has its own asyncio client, which ``aclose`` (or
        ``async with``) closes in that loop.
        """
        feeds = self.io.event_feeds(event)
        if self._shared is not None:
            outputs = await self._grpc_future(feeds)
        else:
            aio = self._http_aio_client()
            inputs, requested = self._request(_client_module("http", aio=True), feeds)
            answer = await aio.infer(
                self.model_name, inputs, model_version=self.model_version, outputs=requested
            )
            outputs = [answer.as_numpy(name) for name in self.output_names]
        return self.io.pick(outputs, 0)

    def _grpc_future(self, feeds: dict[str, np.ndarray]) -> asyncio.Future[list[np.ndarray]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[np.ndarray]] = loop.create_future()

        def settle(answer: Any, error: Exception | None) -> None:
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result([answer.as_numpy(name) for name in self.output_names])

        inputs, outputs = self._request(self._module, feeds)
        assert self._shared is not None
        self._shared.async_infer(
            self.model_name,
            inputs,
            lambda result, error: loop.call_soon_threadsafe(settle, result, error),
            model_version=self.model_version,
            outputs=outputs,
            **self._per_call,
        )
        return future

    def _http_aio_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            module = _client_module("http", aio=True)
            client = module.InferenceServerClient(self.url, conn_timeout=self.timeout_s)
            self._async[loop] = client
        return client

    # -- shared ----------------------------------------------------------------------------

    def _request(self, module: ModuleType, feeds: dict[str, np.ndarray]) -> tuple[list, list]:
        from tritonclient.utils import np_to_triton_dtype

        inputs = []
        for name, array in feeds.items():
            tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(tensor)
        return inputs, [module.InferRequestedOutput(name) for name in self.output_names]

    def _describe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The served model's metadata and configuration; a clear error when it is not there."""
        from tritonclient.utils import InferenceServerException

        client = self._client()
        try:
            ready = client.is_model_ready(self.model_name, self.model_version)
        except InferenceServerException as exc:
            raise ConnectionError(
                f"no Triton server answers {self.protocol} at {self.url} ({exc.message()}); "
                "start one with 'batchml package serve PACKAGE'"
            ) from None
        if not ready:
            raise LookupError(
                f"the Triton server at {self.url} does not serve model {self.model_name!r} "
                f"(version {self.model_version or 'latest'}): serve this package there"
            )
        if self.protocol == "grpc":
            metadata = client.get_model_metadata(self.model_name, self.model_version, as_json=True)
            config = client.get_model_config(self.model_name, self.model_version, as_json=True)
            return metadata, config["config"]
        return (
            client.get_model_metadata(self.model_name, self.model_version),
            client.get_model_config(self.model_name, self.model_version),
        )

    def close(self) -> None:
        """Close the clients of threads and of event loops that are not running."""
        with self._guard:
            opened, self._opened = self._opened, []
        for client in [*opened, self._shared]:
            if client is not None:
                client.close()
        self._shared = None
        for loop, client in list(self._async.items()):
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(client.close())
            if not loop.is_running():
                del self._async[loop]

    async def aclose(self) -> None:
        """Close the running loop's client (then ``close`` for the rest)."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
        self.close()

    def __enter__(self) -> TritonSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> TritonSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _client_module(protocol: Protocol, aio: bool = False) -> ModuleType:
    """tritonclient's module for ``protocol``; ImportError with the install command."""
    import importlib

    name = f"tritonclient.{protocol}" + (".aio" if aio else "")
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"TritonSession needs {name} ({exc}): install it with {TRITONCLIENT_INSTALL}"
        ) from None


def _model_name(folder: Path) -> str:
    """The model's name on the server: the package's, as its Triton repository names it."""
    metadata = folder / "metadata.json"
    if not metadata.is_file():
        raise FileNotFoundError(
            f"{folder}: no metadata.json here; pass a folder written by "
            "'batchml package build MODEL -o DIR'"
        )
    return str(json.loads(metadata.read_text())["name"])


def _input_specs(
    described: Sequence[dict[str, Any]], preprocess: dict[str, Any], where: str
) -> list[InputSpec]:
    """Per-event shapes and dtypes as the server describes them, constants from preprocess.json."""
    from tritonclient.utils import triton_to_np_dtype

    return [
        input_spec(
            node["name"],
            event_shape(node["name"], [int(d) for d in node["shape"]], where),
            feedable_dtype(
                node["name"],
                node["datatype"],
                triton_to_np_dtype(node["datatype"]),
                where,
                "the types tritonclient maps to numpy",
            ),
            preprocess,
        )
        for node in described
    ]
