#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
"""Independent reference for fasa/eval/text_metrics.hpp (tests/eval/text_metrics_test.cpp).

LongBench-V1 (THUDM/LongBench, LongBench/metrics.py) scores answers with Python's own string
semantics and two PyPI packages; this script runs those same pieces, so the C++ re-implementation
is compared against the real thing rather than against a second transcription of it:
  rouge     the `rouge` package (rouge==1.0.1), called as LongBench calls it:
            Rouge().get_scores([prediction], [answer], avg=True)["rouge-l"]["f"], 0.0 on any
            exception
  code_sim  the `fuzzywuzzy` package (fuzzywuzzy==0.18.0, without python-Levenshtein, so
            difflib.SequenceMatcher does the matching), fuzz.ratio(line, answer) / 100 on the
            first line without ` # or //
  qa_f1, normalize, count, retrieval, classification
            a few lines each over Python's str.lower, str.split, string.punctuation, re's
            Unicode-aware \\b, \\w and \\d, and collections.Counter: the Python behaviour the C++
            re-implements by hand (Unicode case mapping, whitespace, word boundaries).

    text_metrics_reference.py --check         exit 0 when rouge and fuzzywuzzy import
    text_metrics_reference.py IN.json OUT.json
    text_metrics_reference.py --unicode OUT.json
    text_metrics_reference.py --tables        the generated tables of text_metrics.hpp

IN.json is a JSON array of {"metric": name, "prediction": str, "answer": str,
"all_classes": [str] (classification only)}; OUT.json receives one value per item: a float
(metric scores; "rouge_raw" gives {"hyp", "ref", "overlap"}, the package's raw counts) or a
string ("normalize": normalize_answer(prediction)).

--unicode writes the character classes the C++ needs, computed by this Python itself:
{"unicode_version", "space": [cp] (str.isspace), "word": [[first, last]] (re's \\w),
"decimal": [[first, last]] (re's \\d), "lower": {cp: [cp, ...]} (str.lower where it changes)}.
"""
import collections
import json
import re
import string
import sys
import unicodedata
import warnings

MAX_CODEPOINT = 0x10FFFF


def check():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import fuzzywuzzy.fuzz  # noqa: F401
    import rouge  # noqa: F401
    return 0


# --- LongBench's metric definitions over Python's str and re ---------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLE = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLE.sub(" ", s)
    return " ".join(s.split())


def qa_f1(prediction, answer):
    p = normalize_answer(prediction).split()
    a = normalize_answer(answer).split()
    same = sum((collections.Counter(p) & collections.Counter(a)).values())
    if same == 0:
        return 0
    precision = 1.0 * same / len(p)
    recall = 1.0 * same / len(a)
    return (2 * precision * recall) / (precision + recall)


def rouge_l(prediction, answer):
    from rouge import Rouge

    try:
        return Rouge().get_scores([prediction], [answer], avg=True)["rouge-l"]["f"]
    except Exception:  # LongBench: a bare except, 0.0
        return 0.0


def rouge_raw(prediction, answer):
    from rouge import Rouge

    try:
        r = Rouge(metrics=["rouge-l"], raw_results=True).get_scores([prediction], [answer])
        return r[0]["rouge-l"]
    except Exception:
        return None


def _digit_runs(text):
    return re.findall(r"\d+", text)


def count(prediction, answer):
    numbers = _digit_runs(prediction)
    right = sum(1 for n in numbers if n == str(answer))
    return 0.0 if not numbers else float(right / len(numbers))


def retrieval(prediction, answer):
    wanted = re.findall(r"Paragraph (\d+)", answer)[0]
    numbers = _digit_runs(prediction)
    right = sum(1 for n in numbers if n == wanted)
    return 0.0 if not numbers else float(right / len(numbers))


def classification(prediction, answer, all_classes):
    found = [c for c in all_classes if c in prediction]
    # Removing while iterating skips the element after each removal; LongBench's loop does
    # exactly this, so the reference must too.
    for term in found:
        if term in answer and term != answer:
            found.remove(term)
    return 1.0 / len(found) if answer in found else 0.0


def code_sim(prediction, answer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fuzzywuzzy import fuzz
    line = ""
    for candidate in prediction.lstrip("\n").split("\n"):
        if "`" not in candidate and "#" not in candidate and "//" not in candidate:
            line = candidate
            break
    return fuzz.ratio(line, answer) / 100


def score(item):
    m, p, a = item["metric"], item["prediction"], item["answer"]
    if m == "normalize":
        return normalize_answer(p)
    if m == "qa_f1":
        return float(qa_f1(p, a))
    if m == "rouge":
        return float(rouge_l(p, a))
    if m == "rouge_raw":
        return rouge_raw(p, a)
    if m == "count":
        return count(p, a)
    if m == "retrieval":
        return retrieval(p, a)
    if m == "classification":
        return classification(p, a, item["all_classes"])
    if m == "code_sim":
        return float(code_sim(p, a))
    raise SystemExit(f"unknown metric {m!r}")


# --- character classes and the generated tables ----------------------------------------------


def ranges(pred):
    out, start = [], None
    for cp in range(MAX_CODEPOINT + 2):
        inside = cp <= MAX_CODEPOINT and pred(cp)
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            out.append([start, cp - 1])
            start = None
    return out


_WORD = re.compile(r"\w")
_DIGIT = re.compile(r"\d")


def is_word(cp):
    return (0xD800 > cp or cp > 0xDFFF) and _WORD.fullmatch(chr(cp)) is not None


def is_decimal(cp):
    return (0xD800 > cp or cp > 0xDFFF) and _DIGIT.fullmatch(chr(cp)) is not None


def lower_map():
    out = {}
    for cp in range(MAX_CODEPOINT + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        low = chr(cp).lower()
        if low != chr(cp):
            out[cp] = [ord(c) for c in low]
    return out


def unicode_classes():
    return {
        "unicode_version": unicodedata.unidata_version,
        "space": [cp for cp in range(MAX_CODEPOINT + 1) if chr(cp).isspace()],
        "word": ranges(is_word),
        "decimal": ranges(is_decimal),
        "lower": {str(cp): low for cp, low in lower_map().items()},
    }


def lower_runs():
    """str.lower's one-code-point mappings as runs {first, last, stride, delta}: every cp in
    first, first + stride, ..., last maps to cp + delta."""
    runs = []
    for cp, low in sorted(lower_map().items()):
        if len(low) != 1:
            continue
        delta = low[0] - cp
        if runs:
            first, last, stride, d = runs[-1]
            step = cp - last
            if d == delta and step in (1, 2) and (first == last or step == stride):
                runs[-1] = [first, cp, step, d]
                continue
        runs.append([cp, cp, 1, delta])
    return runs


def tables():
    lm = lower_map()
    multi = {cp: low for cp, low in lm.items() if len(low) != 1}
    if list(multi) != [0x130] or multi[0x130] != [0x69, 0x307]:
        raise SystemExit(f"unexpected multi-code-point lowercase mappings {multi}; "
                         "text_metrics.hpp handles only U+0130")
    lines = [f"// GENERATED by tests/eval/text_metrics_reference.py --tables (Python "
             f"{sys.version_info.major}.{sys.version_info.minor}, Unicode "
             f"{unicodedata.unidata_version}); the",
             "// test compares every code point against the running Python instead of this text.",
             "// clang-format off"]
    runs = lower_runs()
    lines.append(f"// str.lower: {len(runs)} runs {{first, last, stride, delta}} covering "
                 f"{len(lm) - len(multi)} code points")
    lines.append("// (U+0130 -> U+0069 U+0307 is special-cased in append_lower).")
    lines.append("inline constexpr lower_run lower_runs[] = {")
    row = []
    for first, last, stride, delta in runs:
        row.append(f"{{0x{first:04X}, 0x{last:04X}, {stride}, {delta}}},")
        if len(row) == 3:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append("};")
    dec = ranges(is_decimal)
    lines.append(f"// re's \\d (Nd): {len(dec)} ranges.")
    lines.append("inline constexpr model::unicode::codepoint_range decimal_ranges[] = {")
    row = []
    for a, b in dec:
        row.append(f"{{0x{a:04X}, 0x{b:04X}}},")
        if len(row) == 4:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append("};")
    lines.append("// clang-format on")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) == 2 and argv[1] == "--check":
        return check()
    if len(argv) == 2 and argv[1] == "--tables":
        sys.stdout.write(tables())
        return 0
    if len(argv) == 3 and argv[1] == "--unicode":
        with open(argv[2], "w", encoding="utf-8") as f:
            json.dump(unicode_classes(), f)
        return 0
    if len(argv) == 3:
        with open(argv[1], encoding="utf-8") as f:
            items = json.load(f)
        with open(argv[2], "w", encoding="utf-8") as f:
            json.dump([score(it) for it in items], f)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
