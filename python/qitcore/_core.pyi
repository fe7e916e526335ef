# Type stubs of the Rust extension module qitcore._core (hand-written; checked by mypy.stubtest).
import os
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, Never, Self, TypeVar, final

import numpy as np
from typing_extensions import Buffer as _BufferProtocol

# numpy's stubs declare the buffer protocol only from Python 3.12 on; arrays are accepted here too.
_Buffer = _BufferProtocol | np.ndarray[Any, Any]
_B = TypeVar("_B", bound=_Buffer)
_Order = Literal["big", "little"]
# FrameDecoder.feed's events: a frame (kind, sequence, payload), a gap (expected, received, lost),
# a replay (last, received), a frame of another protocol version.
_DecoderEvent = (
    tuple[Literal["frame"], int, int, bytes]
    | tuple[Literal["gap"], int, int, int]
    | tuple[Literal["replay"], int, int]
    | tuple[Literal["version"], int]
)

__all__ = [
    "CASCADE_VARIANTS",
    "DEFAULT_CASCADE",
    "DEFAULT_PERMUTATIONS",
    "HEALTH_DEFAULT_ALPHA",
    "HEALTH_DEFAULT_STARTUP_SAMPLES",
    "LDPC_BLIND_STEP",
    "MAX_SAMPLES",
    "Ais31Result",
    "BitGenLock",
    "BlockTest",
    "CascadePreparation",
    "CascadeResponder",
    "ChannelKey",
    "ChannelMac",
    "ChiSquareResult",
    "DecoderStats",
    "Detections",
    "DeviceInfo",
    "DeviceStatus",
    "Estimate",
    "FrameDecoder",
    "HealthCounters",
    "HealthMonitor",
    "HealthScan",
    "HealthScanner",
    "IidResult",
    "LdpcDecoder",
    "LdpcEncoder",
    "LrsTestResult",
    "ModifiedToeplitz",
    "NoiseModel",
    "NonIidResult",
    "PermutationStatistic",
    "Reply",
    "RestartResult",
    "SampleFormat",
    "ScanFailure",
    "SecureLength",
    "SelfTest",
    "SimCounters",
    "Stream",
    "StreamCounters",
    "Toeplitz",
    "__version__",
    "ais31_procedure_a",
    "assess_iid",
    "assess_non_iid",
    "assess_restart",
    "available_clmul_backends",
    "bitgen_capsule",
    "cascade_correct",
    "check_decoys",
    "check_link",
    "clmul_backend",
    "conditioned_entropy",
    "crc32c",
    "decode_pulse_numbers",
    "encode_frame",
    "encode_pulse_numbers",
    "finite_key_length",
    "fips140_2",
    "format_descriptor",
    "hash_condition",
    "health_scan",
    "ldpc_keep",
    "ldpc_plan",
    "ldpc_start_efficiency",
    "output_entropy",
    "output_length",
    "parse_format",
    "parse_info",
    "parse_reply",
    "parse_status",
    "set_clmul_backend",
    "sift_announce",
    "sift_answer",
    "sift_conclude",
    "sift_key_count",
    "simulate_bb84",
    "verification_collision_bound",
    "verification_tags",
    "von_neumann",
    "wegman_carter_epsilon",
    "wegman_carter_tag",
]

__version__: str
DEFAULT_PERMUTATIONS: int
MAX_SAMPLES: int
DEFAULT_CASCADE: str
LDPC_BLIND_STEP: float
CASCADE_VARIANTS: tuple[str, ...]
HEALTH_DEFAULT_ALPHA: float
HEALTH_DEFAULT_STARTUP_SAMPLES: int

# Results are the core's classes: frozen, compared by value, made only by qitcore.
class _Result:
    def __new__(cls, *_args: object, **_kwargs: object) -> Never: ...
    def __copy__(self) -> Self: ...
    def __deepcopy__(self, memo: Any, /) -> Self: ...
    # Pickling: the class's _from_state and the fields as plain values.
    def __reduce__(self) -> tuple[Callable[[Any], Self], tuple[Any]]: ...
    @classmethod
    def _from_state(cls, state: Any, /) -> Self: ...

# Results that were dictionaries once: also a read-only mapping of their fields.
class _Counters(_Result):
    def __getitem__(self, key: str, /) -> Any: ...
    def __contains__(self, key: object, /) -> bool: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def keys(self) -> list[str]: ...

# Entropy assessment (SP 800-90B).
@final
class Estimate(_Result):
    name: Final[str]
    view: Final[Literal["literal", "bitstring"]]
    min_entropy: Final[float | None]
    fields: Final[dict[str, int | float]]
    note: Final[str | None]

@final
class NonIidResult(_Result):
    samples: Final[int]
    bits_per_symbol: Final[int]
    alphabet_size: Final[int]
    bitstring_bits: Final[int]
    literal: Final[list[Estimate]]
    bitstring: Final[list[Estimate]]
    h_original: Final[float]
    h_bitstring: Final[float | None]
    h_assessed: Final[float]
    warnings: Final[list[str]]
    def estimates(self) -> list[Estimate]: ...

@final
class ChiSquareResult(_Result):
    score: Final[float]
    df: Final[int]
    p_value: Final[float]
    passed: Final[bool]

@final
class LrsTestResult(_Result):
    length: Final[int]
    p_col: Final[float]
    probability: Final[float]
    passed: Final[bool]

@final
class PermutationStatistic(_Result):
    name: Final[str]
    value: Final[float]
    counts: Final[tuple[int, int, int]]
    passed: Final[bool]

@final
class IidResult(_Result):
    samples: Final[int]
    bits_per_symbol: Final[int]
    alphabet_size: Final[int]
    literal: Final[Estimate]
    bitstring: Final[Estimate | None]
    h_original: Final[float]
    h_bitstring: Final[float | None]
    h_assessed: Final[float]
    mean: Final[float]
    median: Final[float]
    independence: Final[ChiSquareResult]
    goodness_of_fit: Final[ChiSquareResult]
    lrs: Final[LrsTestResult]
    permutation: Final[list[PermutationStatistic]]
    permutation_rounds: Final[int]
    permutation_seed: Final[int]
    passed: Final[bool]

@final
class RestartResult(_Result):
    h_i: Final[float]
    alpha: Final[float]
    cutoff: Final[int]
    max_row: Final[int]
    max_column: Final[int]
    sanity_passed: Final[bool]
    rows: Final[list[Estimate]]
    columns: Final[list[Estimate]]
    h_r: Final[float]
    h_c: Final[float]
    passed: Final[bool]
    h_min: Final[float]

def assess_iid(
    data: _Buffer,
    bits_per_symbol: int | None,
    permutations: int,
    seed: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> IidResult: ...
def assess_restart(data: _Buffer, h_i: float, bits_per_symbol: int | None = None) -> RestartResult: ...
def assess_non_iid(data: _Buffer, bits_per_symbol: int | None = None, max_bits: int | None = None) -> NonIidResult: ...
def health_scan(
    data: _Buffer, min_entropy: float, bits_per_sample: int, alpha: float | None, max_failures: int
) -> HealthScan: ...

@final
class HealthScanner:
    def __new__(cls, min_entropy: float, bits_per_sample: int, alpha: float | None, max_failures: int) -> Self: ...
    def feed(self, data: _Buffer) -> bool: ...
    def report(self) -> HealthScan: ...

def fips140_2(data: _Buffer, bitorder: _Order = ...) -> list[list[BlockTest]]: ...
def ais31_procedure_a(data: _Buffer, bitorder: _Order = ...) -> Ais31Result: ...
def clmul_backend() -> Literal["portable", "pclmul", "vpclmul"]: ...
def available_clmul_backends() -> list[str]: ...
def set_clmul_backend(backend: str) -> None: ...
def von_neumann(data: _Buffer, nbits: int | None = None, bitorder: _Order = ...) -> tuple[bytes, int]: ...
def hash_condition(function: str, data: _Buffer, block_bytes: int, out: _B | None = None) -> bytes | _B: ...
def output_length(n: int, entropy: float, eps: float, convention: str = ...) -> int: ...
def output_entropy(n_in: int, n_out: int, nw: int, h_in: float) -> float: ...
def conditioned_entropy(
    n_in: int, n_out: int, nw: int, h_in: float, vetted: bool, h_prime: float | None = None
) -> float: ...

# The two Toeplitz hashes share their interface (a stub-only base: at run time each is its own class).
class _Hash:
    def __new__(cls, n: int, m: int, seed: _Buffer | None = None, bitorder: _Order = ...) -> Self: ...
    n: Final[int]
    m: Final[int]
    seed_bits: Final[int]
    bitorder: Final[_Order]
    def seed_bytes(self) -> bytes: ...
    def output_bytes(self, blocks: int) -> int: ...
    def hash(self, data: _Buffer, nbits: int | None = None, out: _B | None = None) -> bytes | _B: ...

@final
class Toeplitz(_Hash): ...

@final
class ModifiedToeplitz(_Hash): ...

# Health tests (SP 800-90B continuous tests, FIPS 140-2, AIS 31).
@final
class HealthMonitor:
    def __new__(
        cls,
        min_entropy: float,
        bits_per_sample: int = 8,
        alpha: float | None = None,
        startup_samples: int | None = None,
        apt_formula: Literal["standard", "hill"] = ...,
    ) -> HealthMonitor: ...
    def feed(self, data: _Buffer) -> bytes: ...
    def process(self, data: _Buffer) -> tuple[int, int]: ...
    def reset(self) -> None: ...
    def self_test(self) -> SelfTest: ...
    state: Final[Literal["startup", "healthy", "failed"]]
    cutoffs: Final[tuple[int, int, int]]
    pending: Final[int]
    counters: Final[HealthCounters]
    def _state(self) -> bytes: ...
    @classmethod
    def _from_state(cls, state: _Buffer) -> Self: ...
    def __reduce__(self) -> tuple[Callable[[bytes], Self], tuple[bytes]]: ...

@final
class SelfTest(_Result):
    repetition_count: Final[bool]
    adaptive_proportion: Final[bool]

@final
class HealthCounters(_Result):
    samples: Final[int]
    released: Final[int]
    windows: Final[int]
    longest_run: Final[int]
    largest_window_count: Final[int]
    failures: Final[int]

@final
class ScanFailure(_Result):
    test: Final[Literal["Repetition Count Test", "Adaptive Proportion Test"]]
    index: Final[int]
    value: Final[int]
    count: Final[int]
    cutoff: Final[int]

@final
class HealthScan(_Result):
    samples: Final[int]
    failures: Final[list[ScanFailure]]
    rct_cutoff: Final[int]
    apt_cutoff: Final[int]
    window: Final[int]
    longest_run: Final[int]
    largest_window_count: Final[int]
    passed: Final[bool]

@final
class BlockTest(_Result):
    test: Final[str]
    value: Final[float]
    passed: Final[bool]
    detail: Final[str]

@final
class Ais31Result(_Result):
    t0: Final[BlockTest]
    blocks: Final[list[list[BlockTest]]]
    verdict: Final[Literal["pass", "repeat", "fail"]]

# QDP/1, the device protocol
def crc32c(data: _Buffer) -> int: ...
def encode_frame(kind: int, sequence: int, payload: _Buffer) -> bytes: ...
def format_descriptor(
    bits_per_sample: int, packing: Literal["packed", "aligned"] = ..., bitorder: _Order = ..., rate: int = 0
) -> bytes: ...
def parse_format(data: _Buffer) -> SampleFormat: ...
def parse_status(data: _Buffer) -> DeviceStatus: ...
def parse_info(data: _Buffer) -> DeviceInfo: ...
def parse_reply(data: _Buffer) -> Reply: ...

# The protocol's results were dictionaries: each also answers result["field"].
@final
class SampleFormat(_Counters):
    bits_per_sample: Final[int]
    packing: Final[Literal["packed", "aligned"]]
    bitorder: Final[_Order]
    rate: Final[int]

@final
class DeviceStatus(_Counters):
    state: Final[Literal["idle", "running", "failed", "error", "unknown"]]
    rct_latched: Final[bool]
    apt_latched: Final[bool]
    overrun: Final[bool]
    samples_produced: Final[int]
    frames_sent: Final[int]
    samples_dropped: Final[int]
    rct_failures: Final[int]
    apt_failures: Final[int]
    rct_cutoff: Final[int]
    apt_cutoff: Final[int]
    apt_window: Final[int]
    temperature: Final[float | None]

@final
class DeviceInfo(_Counters):
    protocol_version: Final[int]
    device_class: Final[Literal["qrng", "qkd-detector", "unknown"]]
    max_payload: Final[int]
    format: Final[SampleFormat]
    claimed_min_entropy: Final[float]
    vendor: Final[str]
    model: Final[str]
    serial: Final[str]
    firmware: Final[str]

@final
class Reply(_Counters):
    code: Final[int]
    tag: Final[int]
    result: Final[int]
    data: Final[bytes]

@final
class DecoderStats(_Counters):
    bytes: Final[int]
    frames: Final[int]
    crc_errors: Final[int]
    garbage_bytes: Final[int]
    gaps: Final[int]
    frames_lost: Final[int]
    replays: Final[int]
    def __getitem__(self, key: str, /) -> int: ...

@final
class FrameDecoder:
    def __new__(cls) -> FrameDecoder: ...
    def feed(self, data: _Buffer) -> list[_DecoderEvent]: ...
    def stats(self) -> DecoderStats: ...
    buffered: Final[int]

# The simulator and the pipeline
@final
class NoiseModel:
    # Defaults: the core's (NoiseParams::DEFAULT).
    def __new__(
        cls,
        bits: int = ...,
        rate: float = ...,
        sigma_quantum: float = ...,
        sigma_classical: float = ...,
        gain: float = ...,
        offset: float = ...,
        bandwidth: float = ...,
        range: float = ...,
        seed: int | None = None,
    ) -> NoiseModel: ...
    min_entropy: Final[float]
    min_entropy_without_side_information: Final[float]
    correlation: Final[float]
    bits: Final[int]
    rate: Final[float]
    def stick_after(self, samples: int) -> None: ...
    def drift(self, per_sample: float) -> None: ...
    def read(self, n: int) -> bytes: ...

@final
class StreamCounters(_Counters):
    bytes_in: Final[int]
    frames: Final[int]
    crc_errors: Final[int]
    garbage_bytes: Final[int]
    gaps: Final[int]
    frames_lost: Final[int]
    replays: Final[int]
    malformed_frames: Final[int]
    device_overruns: Final[int]
    samples_in: Final[int]
    samples_startup: Final[int]
    samples_healthy: Final[int]
    samples_withheld: Final[int]
    blocks: Final[int]
    bytes_out: Final[int]
    bytes_delivered: Final[int]
    bytes_queued: Final[int]
    def __getitem__(self, key: str, /) -> int: ...

@final
class SimCounters(_Counters):
    frames: Final[int]
    frames_dropped: Final[int]
    bytes_corrupted: Final[int]
    garbage_bytes: Final[int]
    bytes: Final[int]
    samples: Final[int]
    def __getitem__(self, key: str, /) -> int: ...

@final
class Stream:
    # A stream's defaults, from the core (the options of qitcore.open read them).
    DEFAULT_ALPHA: float
    DEFAULT_EPSILON: float
    DEFAULT_STARTUP_SAMPLES: int
    DEFAULT_BLOCK_BITS: int
    DEFAULT_GAP_POLICY: Literal["count", "error"]
    DEFAULT_CAPACITY: int
    DEFAULT_FRAME_TIMEOUT: float
    DEFAULT_SAMPLES_PER_FRAME: int
    def __new__(
        cls,
        bits_per_sample: int,
        packing: str = ...,
        bitorder: str = ...,
        rate: int = 0,
        *,
        min_entropy: float | None = None,
        alpha: float = ...,
        startup_samples: int = ...,
        block_bits: int = ...,
        epsilon: float = ...,
        gap_policy: str = ...,
        raw: bool = False,
        capacity: int = ...,
        seed: _Buffer | None = None,
        frame_timeout: float | None = ...,
    ) -> Stream: ...
    def attach_sim(
        self,
        model: NoiseModel,
        samples_per_frame: int = ...,
        drop: float = 0.0,
        corrupt: float = 0.0,
        garbage: float = 0.0,
        disconnect_after: int | None = None,
        seed: int = 0,
    ) -> None: ...
    def attach_file(self, path: str | os.PathLike[str], framed: bool = True) -> None: ...
    def attach_fd(self, fd: int, framed: bool = True) -> None: ...
    def feed_samples(self, data: _Buffer) -> None: ...
    def feed(self, data: _Buffer) -> None: ...
    def end(self) -> None: ...
    def disconnect(self, message: str) -> None: ...
    def read(self, n: int, timeout: float | None = None) -> bytes: ...
    def readinto(self, buffer: _Buffer, timeout: float | None = None) -> int: ...
    def close(self) -> None: ...
    def stats(self) -> StreamCounters: ...
    def sim_counters(self) -> SimCounters | None: ...
    block_shape: Final[tuple[int, int] | None]
    cutoffs: Final[tuple[int, int, int] | None]
    def device_status(self) -> DeviceStatus | None: ...
    def reply(self, code: int, tag: int, timeout: float | None) -> Reply | None: ...
    def error(self) -> BaseException | None: ...

@final
class BitGenLock:
    def __new__(cls, *_args: object, **_kwargs: object) -> BitGenLock: ...
    def __enter__(self) -> None: ...
    def __exit__(self, *_exc: object) -> bool: ...

def bitgen_capsule(stream: Stream) -> tuple[Any, BitGenLock]: ...

# QKD post-processing
@final
class SecureLength(_Counters):
    s0: Final[float]
    s1: Final[float]
    s1_test: Final[float]
    v1_test: Final[float]
    phase_error: Final[float]
    penalty: Final[float]
    length: Final[int]
    def __getitem__(self, key: str, /) -> float | int: ...

@final
class Detections(_Result):
    index: Final[bytes]
    alice_basis: Final[bytes]
    alice_bit: Final[bytes]
    intensity: Final[bytes]
    photons: Final[bytes]
    bob_basis: Final[bytes]
    bob_bit: Final[bytes]

@final
class ChannelKey:
    def __new__(cls, key: _Buffer) -> ChannelKey: ...
    def mac(self, out_prefix: _Buffer, in_prefix: _Buffer) -> ChannelMac: ...
    def session(self, label: _Buffer, context: _Buffer, out_prefix: _Buffer, in_prefix: _Buffer) -> ChannelMac: ...

@final
class ChannelMac:
    def __new__(cls, key: _Buffer, out_prefix: _Buffer, in_prefix: _Buffer) -> ChannelMac: ...
    def seal(self, header: _Buffer, payload: _Buffer) -> bytes: ...
    def check(self, frame: _Buffer) -> bool: ...

@final
class CascadePreparation:
    def __new__(cls, n: int, seed: int, variant: str = ...) -> CascadePreparation: ...

@final
class CascadeResponder:
    def __new__(cls, key: _Buffer, qber: float, seed: int, variant: str = ...) -> CascadeResponder: ...
    def answer(self, queries: _Buffer) -> bytes: ...
    disclosed: Final[int]
    n: Final[int]

def ldpc_plan(
    n_key: int,
    qber: float,
    seed: int,
    efficiency: float | None = ...,
    step: float | None = ...,
    lift: int | None = ...,
) -> tuple[tuple[str, int, int, int, int, int, int, int, int, tuple[int, int]], tuple[float, float, int]]: ...
def ldpc_start_efficiency(qber: float) -> float: ...

@final
class LdpcEncoder:
    def __new__(
        cls,
        n_key: int,
        qber: float,
        seed: int,
        key: _Buffer,
        efficiency: float | None = ...,
        step: float | None = ...,
        lift: int | None = ...,
    ) -> LdpcEncoder: ...
    def syndromes(self) -> bytes: ...
    def reveal(self, request: _Buffer) -> bytes: ...
    @property
    def disclosed(self) -> int: ...

@final
class LdpcDecoder:
    def __new__(
        cls,
        n_key: int,
        qber: float,
        seed: int,
        key: _Buffer,
        channel_qber: float,
        max_iterations: int = ...,
        efficiency: float | None = ...,
        step: float | None = ...,
        lift: int | None = ...,
    ) -> LdpcDecoder: ...
    def decode(self, syndromes: _Buffer) -> bytes | None: ...
    def apply(self, reveal: _Buffer) -> bytes | None: ...
    def key(self) -> bytes: ...
    @property
    def failed_frames(self) -> list[int]: ...
    @property
    def disclosed(self) -> int: ...
    @property
    def rounds(self) -> int: ...

def ldpc_keep(
    n_key: int,
    qber: float,
    seed: int,
    key: _Buffer,
    failed: Sequence[int],
    efficiency: float | None = ...,
    step: float | None = ...,
    lift: int | None = ...,
) -> bytes: ...
def cascade_correct(
    key: _Buffer, qber: float, seed: int, ask: Callable[[bytes], bytes], variant: str = ...
) -> tuple[bytes, int, int, int]: ...
def verification_tags(key: _Buffer, points: Sequence[int]) -> list[int]: ...
def verification_collision_bound(n: int) -> float: ...
def wegman_carter_tag(key: _Buffer, pad: _Buffer, header: _Buffer, payload: _Buffer) -> bytes: ...
def wegman_carter_epsilon(n: int) -> float: ...
def finite_key_length(
    mu: Sequence[float],
    p: Sequence[float],
    key_counts: Sequence[int],
    test_counts: Sequence[int],
    test_errors: Sequence[int],
    leaked: int,
    eps_sec: float,
    eps_cor: float,
) -> SecureLength: ...
def simulate_bb84(
    pulses: int,
    seed: int,
    distance_km: float,
    attenuation_db_per_km: float,
    detector_efficiency: float,
    dark_count: float,
    misalignment: float,
    mu: Sequence[float],
    p: Sequence[float],
    key_basis_probability: float,
) -> Detections: ...
def sift_announce(index: _Buffer, basis: _Buffer) -> bytes: ...
def sift_answer(
    index: _Buffer, basis: _Buffer, bit: _Buffer, intensity: _Buffer, message: _Buffer
) -> tuple[bytes, tuple[bytes, bytes, bytes, bytes], int]: ...
def sift_conclude(basis: _Buffer, bit: _Buffer, reply: _Buffer) -> tuple[bytes, bytes, bytes, bytes]: ...
def sift_key_count(basis: _Buffer, reply: _Buffer) -> int: ...
def encode_pulse_numbers(index: _Buffer) -> bytes: ...
def decode_pulse_numbers(wire: _Buffer) -> bytes: ...
def check_decoys(mu: Sequence[float], p: Sequence[float]) -> None: ...
def check_link(
    distance_km: float,
    attenuation_db_per_km: float,
    detector_efficiency: float,
    dark_count: float,
    misalignment: float,
    mu: Sequence[float],
    p: Sequence[float],
    key_basis_probability: float,
) -> None: ...
