"""Results as JSON with the fields of NIST's ``ea_non_iid -o`` / ``ea_iid -o`` output, plus every
intermediate value qitcore computed under ``"qitcore"``."""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

from .._core import __version__
from .._records import as_dict
from ..entropy import Estimate, IidResult, NonIidResult

if TYPE_CHECKING:
    from ..archive import FileAssessment

# The layout of the single-result files (as NIST's tool writes them).
_LAYOUT: dict[str, Any] = {"indent": 3, "sort_keys": True}

# NIST's test case names, in its order, for each estimator.
_CASES = [
    ("Most Common Value", "Most Common Value"),
    ("Collision", "Collision Test (for bit strings only)"),
    ("Markov", "Markov Test (for bit strings only)"),
    ("Compression", "Compression Test (for bit strings only)"),
    ("t-Tuple", "T-Tuple Test"),
    ("LRS", "LRS Test"),
    ("MultiMCW Prediction", "Multi Most Common in Window Test"),
    ("Lag Prediction", "Lag Prediction Test"),
    ("MultiMMC Prediction", "Multi Markov Model with Counting Test (MultiMMC)"),
    ("LZ78Y Prediction", "LZ78Y Test"),
]


def _base(iid: bool, commandline: str, filename: str | None, sha256: str | None) -> dict[str, Any]:
    base: dict[str, Any] = {
        "IID": iid,
        "commandline": commandline,
        "dateTimeStamp": datetime.datetime.now().strftime("%Y%m%d%H%M%S"),
        "errorLevel": 0,
        "toolVersion": f"qitcore {__version__}",
        "type": "",
    }
    if filename:
        base["filename"] = filename
    if sha256:
        base["sha256"] = sha256
    return base


def _find(estimates: list[Estimate], name: str) -> Estimate | None:
    return next((e for e in estimates if e.name == name), None)


def non_iid_json(
    result: NonIidResult, *, commandline: str = "", filename: str | None = None, sha256: str | None = None
) -> str:
    """The non-IID result as NIST's JSON."""
    return json.dumps(non_iid_document(result, commandline=commandline, filename=filename, sha256=sha256), **_LAYOUT)


def non_iid_document(
    result: NonIidResult, *, commandline: str = "", filename: str | None = None, sha256: str | None = None
) -> dict[str, Any]:
    """The non-IID result as the object of NIST's JSON."""
    cases = []
    binary = result.alphabet_size == 2
    for name, desc in _CASES:
        case: dict[str, Any] = {"testCaseDesc": desc}
        lit, bit = _find(result.literal, name), _find(result.bitstring, name)
        if name in ("t-Tuple", "LRS"):
            key = "TTupleRes" if name == "t-Tuple" else "LrsRes"
            if bit and bit.min_entropy is not None:
                case["bin" + key] = bit.min_entropy
            if lit and lit.min_entropy is not None:
                case[key[0].lower() + key[1:]] = lit.min_entropy
        else:
            if bit and bit.min_entropy is not None:
                case["hBitstring"] = bit.min_entropy
            if lit and lit.min_entropy is not None and (binary or name not in ("Collision", "Markov", "Compression")):
                case["hOriginal"] = lit.min_entropy
        if name == "Most Common Value" and lit:
            case["mcvEstimateMode"] = float(lit.fields["Mode count"])
            case["mcvEstimatePHat"] = lit.fields["p-hat"]
            case["mcvEstimatePU"] = lit.fields["p_u"]
        cases.append(case)
    overall: dict[str, Any] = {
        "dataWordSize": float(result.bits_per_symbol),
        "hAssessed": result.h_assessed,
        "hOriginal": result.h_original,
        "testCaseDesc": "Overall",
    }
    if result.h_bitstring is not None:
        overall["hBitstring"] = result.h_bitstring
    cases.append(overall)
    doc = _base(False, commandline, filename, sha256)
    doc["testCases"] = cases
    doc["qitcore"] = as_dict(result)
    return doc


def _nist_stat_name(name: str) -> str:
    return name.replace("(", "").replace(")", "")


def iid_json(
    result: IidResult, *, commandline: str = "", filename: str | None = None, sha256: str | None = None
) -> str:
    """The IID result as NIST's JSON."""
    return json.dumps(iid_document(result, commandline=commandline, filename=filename, sha256=sha256), **_LAYOUT)


def iid_document(
    result: IidResult, *, commandline: str = "", filename: str | None = None, sha256: str | None = None
) -> dict[str, Any]:
    """The IID result as the object of NIST's JSON."""
    iterations = []
    for i in range(3):
        it: dict[str, Any] = {"iteration": i}
        for s in result.permutation:
            it[_nist_stat_name(s.name)] = float(s.counts[i])
        iterations.append(it)
    case: dict[str, Any] = {
        "hAssessed": result.h_assessed,
        "hOriginal": result.h_original,
        "mean": result.mean,
        "median": result.median,
        "passedChiSquareTests": result.independence.passed and result.goodness_of_fit.passed,
        "passedIidPermutationTests": all(s.passed for s in result.permutation),
        "passedLongestRepeatedSubstringTest": result.lrs.passed,
        "permutationTestResults": iterations,
        "testCaseDesc": "",
    }
    if result.h_bitstring is not None:
        case["hBitstring"] = result.h_bitstring
    doc = _base(True, commandline, filename, sha256)
    doc["testCases"] = [case]
    doc["qitcore"] = as_dict(result)
    return doc


def file_record_json(record: FileAssessment, *, commandline: str = "") -> str:
    """One line of ``qitcore assess --jsonl``: the file (``path``, ``size`` in samples, ``sha256``,
    ``seconds``, ``error``: null when assessed, ``subset``: ``[index, count]`` of the block
    assessed, null for the whole file) and each track's NIST document (``nonIid``,
    ``iid``: null when that track did not run or the file was not assessed)."""
    path, sha256 = record.path, record.sha256
    doc = {
        "path": record.path,
        "size": record.size,
        "sha256": record.sha256,
        "seconds": record.seconds,
        "error": record.error,
        "subset": None if record.subset is None else list(record.subset),
        "nonIid": None
        if record.non_iid is None
        else non_iid_document(record.non_iid, commandline=commandline, filename=path, sha256=sha256),
        "iid": None
        if record.iid is None
        else iid_document(record.iid, commandline=commandline, filename=path, sha256=sha256),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))
