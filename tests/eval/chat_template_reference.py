#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
"""Independent reference for fasa/eval/longbench.hpp's chat template (tests/eval/longbench_test.cpp).

Reads tokenizer.chat_template from a GGUF file with the `gguf` package and renders it with
`jinja2` the way Hugging Face transformers' apply_chat_template does (an immutable sandboxed
environment with trim_blocks and lstrip_blocks), so the C++ ChatML writer is compared against
the model's own template rather than against a transcription of it.

    chat_template_reference.py --check                  exit 0 when gguf and jinja2 import
    chat_template_reference.py MODEL.gguf IN.json OUT.json

IN.json is a JSON array of {"messages": [{"role": str, "content": str}, ...],
"add_generation_prompt": bool}. OUT.json receives {"template": the GGUF's template text,
"rendered": [str, ...]}, one rendering per item.
"""
import json
import sys


def main(argv):
    if len(argv) == 2 and argv[1] == "--check":
        import gguf  # noqa: F401
        import jinja2  # noqa: F401
        return 0
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    from gguf import GGUFReader
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    field = GGUFReader(argv[1]).fields.get("tokenizer.chat_template")
    if field is None:
        raise SystemExit(f"{argv[1]}: no tokenizer.chat_template")
    source = field.contents()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(source)
    with open(argv[2], encoding="utf-8") as f:
        items = json.load(f)
    rendered = [template.render(messages=it["messages"],
                                add_generation_prompt=it["add_generation_prompt"])
                for it in items]
    with open(argv[3], "w", encoding="utf-8") as f:
        json.dump({"template": source, "rendered": rendered}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
