#!/usr/bin/env python3
"""Lists every function in `src/` with its length in lines, and checks issue 17's goal: no function
over 100 lines and at most 10 over 60.

Usage: `python3 scripts/fn-lengths.py [--check] [--all] [--over N] [--include-tests]`.
Prints the functions over 60 lines (every function with `--all`, or over N with `--over N`), longest
first, as `lines  path:line  name`, then the count over 60 and over 100 for the whole of `src/` and per
folder. With `--check` it exits 1 when the goal fails.

How a function is measured: from the line of its `fn` keyword (attributes and doc comments not counted,
a signature that wraps counted) to the line of its closing brace, both included. A function nested in
another is listed on its own and also counts in its parent's lines. Declarations without a body (trait
methods ending in `;`) are not functions here. Comments, strings (raw ones too) and character literals
are blanked before braces are matched, so a `{` in a string or a doc example never counts.

What is left out, and why: test code. The goal is about the code that runs; a test reads as a story and
its length is its scenario. So items under `#[cfg(test)]` (the `mod tests { .. }` blocks, test-only
functions) are skipped, and so are whole files included only under `#[cfg(test)]` (`mod tests;`,
`mod fixtures;`, `mod testing;` declared after that attribute: `src/reconcile/tests.rs`,
`src/policy/tests*.rs`, ...). `--include-tests` counts them too. The simulator crate (`crates/`) and
`tests/` are outside `src/` and not counted.
"""
import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
LONG, TOO_LONG, MAX_LONG = 60, 100, 10


def blank(text: str) -> str:
    """The text with comments, strings and character literals replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(text)

    def keep_newlines(s: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(keep_newlines(text[i:j]))
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not _ident(text[i - 1])):
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(keep_newlines(text[i:j]))
            i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not _ident(text[i - 1]))):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(keep_newlines(text[i:j]))
            i = j
        elif c == "'":
            # A character literal ('a', '\n', '\u{1F600}', '{') or a lifetime ('a, 'static).
            m = re.compile(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'").match(text, i)
            if m:
                out.append(" " * (m.end() - i))
                i = m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _ident(c: str) -> bool:
    return c.isalnum() or c == "_"


def matching(code: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


CFG_TEST = re.compile(r"#\[cfg\(test\)\]")
TEST_FILE_MOD = re.compile(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*;")


def test_spans(code: str):
    """(start, end) offsets of items under #[cfg(test)], and the names of test-only module files."""
    spans, files = [], []
    for m in CFG_TEST.finditer(code):
        decl = TEST_FILE_MOD.match(code, m.end())
        if decl:
            files.append(decl.group(1))
            continue
        brace, semi = code.find("{", m.end()), code.find(";", m.end())
        if brace >= 0 and (semi < 0 or brace < semi):
            spans.append((m.start(), matching(code, brace)))
    return spans, files


FN = re.compile(r"\bfn\s+([A-Za-z_]\w*)")


def functions(path: pathlib.Path, include_tests: bool):
    code = blank(path.read_text())
    spans, _ = test_spans(code)
    for m in FN.finditer(code):
        if not include_tests and any(a <= m.start() <= b for a, b in spans):
            continue
        brace, semi = code.find("{", m.end()), code.find(";", m.end())
        if brace < 0 or (0 <= semi < brace):
            continue  # a declaration without a body
        end = matching(code, brace)
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, end) + 1
        yield m.group(1), first, last - first + 1


def test_files(include_tests: bool) -> set:
    """Files compiled only under #[cfg(test)]: `mod x;` after the attribute, in x.rs or x/mod.rs."""
    if include_tests:
        return set()
    out = set()
    for path in SRC.rglob("*.rs"):
        _, names = test_spans(blank(path.read_text()))
        here = path.parent if path.name in ("mod.rs", "lib.rs", "main.rs") else path.with_suffix("")
        for name in names:
            out |= {here / f"{name}.rs", here / name / "mod.rs"}
    return out


def folder(rel: pathlib.Path) -> str:
    return str(rel.parent) + "/" if len(rel.parts) > 1 else "(root)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the goal fails")
    ap.add_argument("--all", action="store_true", help="list every function")
    ap.add_argument("--over", type=int, default=LONG, help="list functions over this many lines")
    ap.add_argument("--include-tests", action="store_true", help="count test code too")
    args = ap.parse_args()

    skip = test_files(args.include_tests)
    rows = []
    for path in sorted(SRC.rglob("*.rs")):
        if path in skip:
            continue
        rel = path.relative_to(SRC)
        for name, line, length in functions(path, args.include_tests):
            rows.append((length, f"src/{rel}:{line}", name, folder(rel)))
    rows.sort(key=lambda r: (-r[0], r[1]))
    for length, where, name, _ in rows:
        if args.all or length > args.over:
            print(f"{length:5}  {where}  {name}")

    over_long = sum(1 for r in rows if r[0] > LONG)
    over_max = sum(1 for r in rows if r[0] > TOO_LONG)
    print(f"\nsrc/: {len(rows)} functions, {over_long} over {LONG} lines, {over_max} over {TOO_LONG}")
    folders = sorted({r[3] for r in rows})
    for f in folders:
        mine = [r for r in rows if r[3] == f]
        a = sum(1 for r in mine if r[0] > LONG)
        b = sum(1 for r in mine if r[0] > TOO_LONG)
        if a or b:
            print(f"  {f:22} {a:3} over {LONG}, {b:3} over {TOO_LONG}  (longest {mine[0][0]}: {mine[0][2]})")
    ok = over_max == 0 and over_long <= MAX_LONG
    print(f"goal (none over {TOO_LONG}, at most {MAX_LONG} over {LONG}): {'met' if ok else 'not met'}")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
