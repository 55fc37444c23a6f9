#!/usr/bin/env python3
"""Keeps the docs from drifting away from the code.

    python3 tests/docs/check_docs.py --root . --rebound build/rebound

Three checks; every finding is one failed check, with a message that says
where and what. The last line is "N passed, M failed"; the exit status is 1
when anything failed (2 for a usage error of this script).

1. C++ blocks. Every fenced block whose info string starts with `cpp` in
   README.md and docs/*.md is compiled with `-std=c++20 -fsyntax-only`,
   one at a time, under `nice -n 19`. A block whose info string is exactly
   `cpp pseudo` is pseudo-code (signature lists and the like): skipped and
   counted. Every other block needs an entry in tests/docs/contexts.py,
   keyed by (file, index of the block among that file's cpp blocks, pseudo
   ones included, from 0). A block without one fails ("add a context for
   FILE block K"), and so does an entry for a block that no longer exists,
   so a new or moved block cannot slip through unchecked. Each entry's
   `starts` is how the block's first code line (after its #include lines)
   begins: when blocks move, the check says so instead of compiling a block
   with another block's context. The translation unit is:

     - the block's own #include lines (only the headers the block names);
     - the context's `doc_includes`: rebound headers the doc itself tells
       the reader to include. Each must be named (as `rebound/x.hpp`) in the
       file's preamble (the text before its first `## ` heading) or in the
       block's own `## ` section; the check fails otherwise;
     - the context's `includes`: what its own declarations need (Asio,
       gtest, <string>, ...);
     - `namespace reader {`, the context's `decls` (the reader's own types,
       variables and functions the snippet uses: never rebound API, so no
       `namespace rebound` in them), then the block's body wrapped per the
       context's `wrap`:
         "namespace"  at namespace scope, as written;
         "function"   in `RET doc_block() { ... }` (RET: context `returns`,
                      default void);
         "coroutine"  in `asio::awaitable<void> doc_block() { ... }`;
       then `}`.
   `#line` directives make compiler errors point at the doc's own lines.

2. `--help` against the docs, both ways, for run, http, policy show and
   simulate. Only long flags (`--xxx`) are compared. From `rebound SUB
   --help`: the long names in the option column of the Options list. From
   the docs, each subcommand's text is (docs/cli.md unless said otherwise):
     run          the synopsis entry `rebound run ...` (with its indented
                  continuation lines) in the synopsis block before the first
                  `## ` heading, and the `## rebound run` section (its
                  `###` subsections included);
     policy show  the synopsis entries `rebound policy show ...` and the
                  `## rebound policy show` section;
     http         the `## rebound http` section, which hands the flags to
                  http.md: its "## `rebound http`" section is added (the
                  check fails if cli.md stops pointing there);
     simulate     the `## rebound simulate` section.
   Shared policy flags: the synopsis block's `policy flags:` entry (with its
   continuations), and the prose between the synopsis block and the first
   `## ` heading (durations, defaults, --config), belong to every
   subcommand whose text says `[policy flags]`; the check fails if such a
   subcommand's --help lacks one of them. `--help` and `--version` are
   documented once, by the synopsis entries `rebound --version` and
   `rebound [SUBCOMMAND] --help` (which must be there), and are not looked
   for in each section. In an inline code span that starts with another
   program (`curl --fail`, `ls urls | xargs ... rebound run --x`), only the
   flags after the word `rebound` are rebound's. Every --help flag must be
   in the subcommand's doc text, and every flag that text names must be in
   --help. `rebound --version` must print `rebound X.Y.Z`.

3. Commands. In README.md and docs/*.md, a fenced block line `$ rebound
   ...` (continued by a trailing backslash) followed by output lines is
   run from ROOT with a 60 s timeout, unless it needs the network (it names
   http:// or https://) or runs a program (`rebound run ... -- PROG`) that
   is not on this machine: then it is skipped and counted. Each shown output
   line, apart from blank lines and lines that are just `...`, must match
   (whole line, spaces at either end ignored) some line of the real stdout
   and stderr, with every number standing for any number and every run of
   spaces for any run of whitespace. A mismatch names the doc line and the
   closest real line.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ next to contexts.py

# --------------------------------------------------------------------------
# Results


def doc_files(root: str) -> list[str]:
    """README.md and docs/*.md, relative to root."""
    return ["README.md"] + sorted(
        os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md")))


def doc_texts(root: str):
    """(relative path, text) of each doc file that exists."""
    for rel in doc_files(root):
        path = os.path.join(root, rel)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                yield rel, f.read()


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.messages: list[str] = []

    def ok(self) -> None:
        self.passed += 1

    def fail(self, message: str) -> None:
        self.failed += 1
        self.messages.append(message)
        print("FAIL: " + message, flush=True)


# --------------------------------------------------------------------------
# Markdown


class Fence:
    """One fenced code block: info string, first content line (1-based), lines."""

    def __init__(self, info: str, line: int, lines: list[str]) -> None:
        self.info = info
        self.line = line  # line number of the first content line
        self.lines = lines


FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`]*?)\s*$")


def fences(text: str) -> list[Fence]:
    """Fenced blocks of a Markdown text, contents dedented by the fence's indent."""
    out: list[Fence] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, marker, info = len(m.group(1)), m.group(2), m.group(3)
        close = re.compile(r"^\s*" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = []
        for raw in lines[i + 1 : j]:
            strip = min(indent, len(raw) - len(raw.lstrip(" ")))
            body.append(raw[strip:])
        out.append(Fence(info, i + 2, body))
        i = j + 1
    return out


def heading_sections(text: str, level: int = 2) -> list[tuple[str, int, int]]:
    """(title, first line index, end line index) of each heading of `level`,
    ending at the next heading of that level or higher. Fenced code is not
    searched for headings."""
    lines = text.split("\n")
    heads: list[tuple[int, int, str]] = []
    in_fence = None
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m:
            if in_fence is None:
                in_fence = m.group(1)[0]
            elif line.strip().startswith(in_fence * 3):
                in_fence = None
            continue
        if in_fence is None:
            h = re.match(r"^(#{1,6})\s+(.*?)\s*$", line)
            if h:
                heads.append((i, len(h.group(1)), h.group(2)))
    out = []
    for k, (i, lv, title) in enumerate(heads):
        if lv != level:
            continue
        end = len(lines)
        for i2, lv2, _ in heads[k + 1 :]:
            if lv2 <= level:
                end = i2
                break
        out.append((title, i, end))
    return out


def preamble_end(text: str) -> int:
    """Index of the first `## ` heading line (outside fences), or the line count."""
    secs = heading_sections(text, 2)
    return secs[0][1] if secs else len(text.split("\n"))


# --------------------------------------------------------------------------
# 1. C++ blocks

INCLUDE_LINE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def cpp_blocks(root: str) -> list[tuple[str, int, Fence]]:
    out = []
    for rel, text in doc_texts(root):
        k = 0
        for fence in fences(text):
            if fence.info.startswith("cpp"):
                out.append((rel, k, fence))
                k += 1
    return out


def load_contexts(root: str):
    path = os.path.join(root, "tests", "docs", "contexts.py")
    spec = importlib.util.spec_from_file_location("doc_contexts", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"check_docs: cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CONTEXTS, path


def header_named_near(text: str, block_line: int, header: str) -> bool:
    """True when `header` is named in the file's preamble or in the `## `
    section that holds the line `block_line` (1-based)."""
    lines = text.split("\n")
    pre = "\n".join(lines[: preamble_end(text)])
    if header in pre:
        return True
    for _, start, end in heading_sections(text, 2):
        if start < block_line <= end:
            return header in "\n".join(lines[start:end])
    return False


def translation_unit(rel: str, k: int, fence: Fence, ctx: dict, ctx_path: str) -> str:
    own_includes: list[tuple[int, str]] = []
    body: list[tuple[int, str]] = []
    for n, line in enumerate(fence.lines):
        (own_includes if INCLUDE_LINE.match(line) else body).append((fence.line + n, line))
    out = [f"// {rel} block {k} (line {fence.line}), generated by tests/docs/check_docs.py"]
    for n, line in own_includes:
        out.append(f'#line {n} "{rel}"')
        out.append(line)
    out.append(f'#line 1 "{ctx_path}[{rel} block {k}]"')
    for h in ctx.get("doc_includes", []):
        out.append(f"#include <{h}>")
    for h in ctx.get("includes", []):
        out.append(f"#include <{h}>")
    wrap = ctx["wrap"]
    if wrap == "coroutine":
        out.append("#include <asio/awaitable.hpp>")
    out.append("namespace reader {")
    out.append(ctx.get("decls", ""))
    if wrap == "function":
        out.append(f"{ctx.get('returns', 'void')} doc_block() {{")
    elif wrap == "coroutine":
        out.append("asio::awaitable<void> doc_block() {")
    prev = None
    for n, line in body:
        if prev is None or n != prev + 1:
            out.append(f'#line {n} "{rel}"')
        out.append(line)
        prev = n
    if wrap in ("function", "coroutine"):
        out.append("}")
    out.append("}  // namespace reader")
    return "\n".join(out) + "\n"


def check_cpp(args, results: Results) -> dict:
    root = args.root
    contexts, ctx_abspath = load_contexts(root)
    ctx_path = os.path.relpath(ctx_abspath, root)
    blocks = cpp_blocks(root)
    texts: dict[str, str] = {}
    seen = set()
    counts = {"compiled": 0, "pseudo": 0}
    includes = list(args.include or [os.path.join(root, "include")])
    flags = ["-std=c++20", "-fsyntax-only"]
    for inc in includes:
        flags.append("-I" + inc)
    if os.path.isdir("/usr/include/postgresql"):
        flags.append("-I/usr/include/postgresql")
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    with tempfile.TemporaryDirectory(prefix="check_docs.") as tmp:
        for rel, k, fence in blocks:
            key = (rel, k)
            where = f"{rel} block {k} (line {fence.line})"
            if fence.info == "cpp pseudo":
                counts["pseudo"] += 1
                print(f"pseudo: {where}")
                continue
            seen.add(key)
            ctx = contexts.get(key)
            if ctx is None:
                results.fail(
                    f"{where}: no context; add a context for {rel} block {k} to {ctx_path} "
                    "(or mark the block ```cpp pseudo if it is not code)"
                )
                continue
            if rel not in texts:
                with open(os.path.join(root, rel), encoding="utf-8") as f:
                    texts[rel] = f.read()
            problems = []
            first = next((l.strip() for l in fence.lines if l.strip() and not INCLUDE_LINE.match(l)), "")
            if not ctx.get("starts"):
                problems.append(f"no `starts` (the block's first code line begins {first[:50]!r})")
            elif not first.startswith(ctx["starts"]):
                problems.append(
                    f"it was written for a block whose first code line begins {ctx['starts']!r}, but "
                    f"this block's begins {first[:50]!r}: a block was added, removed or rewritten; "
                    "re-key or update the contexts"
                )
            if ctx.get("wrap") not in ("namespace", "function", "coroutine"):
                problems.append(f"wrap must be namespace, function or coroutine, not {ctx.get('wrap')!r}")
            if re.search(r"\bnamespace\s+rebound\b", ctx.get("decls", "")):
                problems.append("its decls declare rebound names: contexts declare the reader's names only")
            for h in ctx.get("doc_includes", []):
                if not header_named_near(texts[rel], fence.line, h):
                    problems.append(
                        f"doc include <{h}> is named neither in {rel}'s preamble nor in the "
                        "block's section: add the #include line to the block instead"
                    )
            if problems:
                for p in problems:
                    results.fail(f"{ctx_path}, context for {where}: {p}")
                continue
            tu = translation_unit(rel, k, fence, ctx, ctx_path)
            src = os.path.join(tmp, f"{rel.replace('/', '_')}.{k}.cpp")
            with open(src, "w", encoding="utf-8") as f:
                f.write(tu)
            cmd = nice + [args.cxx] + flags + [f"-I{i}" for i in ctx.get("include_dirs", [])] + [src]
            t0 = time.monotonic()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=root)
                rc, err = p.returncode, p.stderr
            except subprocess.TimeoutExpired:
                rc, err = -1, "compiler timed out after 600 s"
            counts["compiled"] += 1
            took = time.monotonic() - t0
            if rc == 0:
                print(f"ok: {where} compiles ({took:.1f}s)", flush=True)
                results.ok()
            else:
                errors = [l for l in err.splitlines() if re.search(r"\berror\b", l)]
                shown = "\n".join("    " + l for l in err.splitlines()[:40])
                results.fail(
                    f"{where} does not compile (context: {ctx_path}): "
                    f"{errors[0].strip() if errors else 'exit ' + str(rc)}\n"
                    f"{shown}\n    (rerun with --keep DIR to see the translation unit)"
                )
                if args.keep:
                    keep = os.path.join(args.keep, os.path.basename(src))
                    os.makedirs(args.keep, exist_ok=True)
                    shutil.copy(src, keep)
                    print(f"    kept {keep}")
    for key in sorted(set(contexts) - seen):
        results.fail(
            f"{ctx_path}: context for {key[0]} block {key[1]}, but that file has no such "
            "non-pseudo cpp block: remove or re-key it"
        )
    return counts


# --------------------------------------------------------------------------
# 2. --help against docs/cli.md

LONG_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
GLOBAL_FLAGS = {"--help", "--version"}


def help_flags(rebound: str, sub: list[str]) -> tuple[set[str], str]:
    p = subprocess.run([rebound, *sub, "--help"], capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    flags: set[str] = set()
    in_options = False
    for line in out.splitlines():
        if re.match(r"^\S.*:\s*$", line):
            in_options = line.strip() == "Options:"
            continue
        if in_options and re.match(r"^\s+-", line):
            names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
            flags.update(LONG_FLAG.findall(names))
    return flags, out


def doc_flags(text: str) -> set[str]:
    """Long flags named in a piece of Markdown (see the module doc for code spans)."""
    flags: set[str] = set()
    in_fence = False
    for line in text.split("\n"):
        if re.match(r"^\s*(`{3,}|~{3,})", line):
            in_fence = not in_fence
            continue
        if in_fence:
            flags.update(LONG_FLAG.findall(line))
            continue
        # Inline code spans: a span that starts with another program's name
        # gives only the flags after `rebound`.
        pos = 0
        for m in re.finditer(r"(`+)(.+?)\1", line):
            flags.update(LONG_FLAG.findall(line[pos : m.start()]))
            span = m.group(2).strip()
            first = span.split()[0] if span.split() else ""
            if first and not first.startswith("-") and first != "rebound" and re.match(r"^[\w./-]+$", first):
                words = span.split()
                if "rebound" in words:
                    after = " ".join(words[words.index("rebound") + 1 :])
                    flags.update(LONG_FLAG.findall(after))
            else:
                flags.update(LONG_FLAG.findall(span))
            pos = m.end()
        flags.update(LONG_FLAG.findall(line[pos:]))
    return flags


def synopsis_entries(block: list[str]) -> list[tuple[str, str]]:
    """(first line, whole entry text) of each entry in a synopsis block:
    an entry starts at a line without indentation; indented lines continue it."""
    entries: list[list[str]] = []
    for line in block:
        if not line.strip():
            continue
        if line[0].isspace() and entries:
            entries[-1].append(line)
        else:
            entries.append([line])
    return [(e[0], "\n".join(e)) for e in entries]


def section(text: str, title: str) -> str | None:
    lines = text.split("\n")
    for t, start, end in heading_sections(text, 2):
        if t == title:
            return "\n".join(lines[start:end])
    return None


def check_help(args, results: Results) -> dict:
    root, rebound = args.root, args.rebound
    counts = {"flags": 0}
    cli_path = os.path.join(root, "docs", "cli.md")
    http_path = os.path.join(root, "docs", "http.md")
    with open(cli_path, encoding="utf-8") as f:
        cli = f.read()
    with open(http_path, encoding="utf-8") as f:
        http_md = f.read()

    # --version
    p = subprocess.run([rebound, "--version"], capture_output=True, text=True, timeout=60)
    if p.returncode == 0 and re.fullmatch(r"rebound \d+\.\d+\.\d+", p.stdout.strip()):
        results.ok()
    else:
        results.fail(
            f"`rebound --version` should print `rebound X.Y.Z` and exit 0; it printed "
            f"{(p.stdout + p.stderr).strip()!r} (exit {p.returncode})"
        )

    # The synopsis block: the first fence before the first `## ` heading.
    cli_lines = cli.split("\n")
    pre_end = preamble_end(cli)
    syn = [f for f in fences(cli) if f.line <= pre_end]
    if not syn:
        results.fail("docs/cli.md: no synopsis block before the first `## ` heading")
        return counts
    syn_block = syn[0]
    entries = synopsis_entries(syn_block.lines)
    syn_end = syn_block.line + len(syn_block.lines)  # 1-based line of the closing fence
    preamble_prose = "\n".join(cli_lines[syn_end:pre_end])

    docs: dict[str, list[tuple[str, str]]] = {s: [] for s in ("run", "http", "policy show", "simulate")}
    policy_flags: set[str] = set()
    global_text = ""
    for first, entry in entries:
        if first.startswith("policy flags:"):
            policy_flags |= doc_flags("```\n" + entry + "\n```")
        elif first.startswith("rebound run"):
            docs["run"].append(("synopsis `rebound run`", entry))
        elif first.startswith("rebound policy show"):
            docs["policy show"].append(("synopsis `rebound policy show`", entry))
        elif first.startswith("rebound --version") or first.startswith("rebound [SUBCOMMAND]"):
            global_text += entry + "\n"
        else:
            results.fail(f"docs/cli.md synopsis: entry {first.strip()!r} belongs to no known subcommand")
    for flag in sorted(GLOBAL_FLAGS):
        counts["flags"] += 1
        if flag in doc_flags("```\n" + global_text + "\n```"):
            results.ok()
        else:
            results.fail(
                f"docs/cli.md synopsis: no `rebound --version` / `rebound [SUBCOMMAND] --help` "
                f"entry documents {flag}"
            )
    if not policy_flags:
        results.fail("docs/cli.md synopsis: no `policy flags:` entry")

    for sub in ("run", "http", "policy show", "simulate"):
        title = f"rebound {sub}"
        sec = section(cli, title)
        if sec is None:
            results.fail(f"docs/cli.md: no `## {title}` section")
            continue
        docs[sub].append((f"`## {title}`", sec))
    http_sec = section(cli, "rebound http") or ""
    if "(http.md)" in http_sec and "flags" in http_sec:
        other = section(http_md, "`rebound http`")
        if other is None:
            results.fail("docs/http.md: no \"## `rebound http`\" section, which docs/cli.md points to for the flags")
        else:
            docs["http"].append(("docs/http.md \"## `rebound http`\"", other))
    else:
        results.fail(
            "docs/cli.md `## rebound http` no longer points to http.md for the flags: "
            "update tests/docs/check_docs.py's rule for http"
        )

    for sub, parts in docs.items():
        help_set, help_out = help_flags(rebound, sub.split())
        if not help_set:
            results.fail(f"`rebound {sub} --help` lists no long flags:\n{help_out}")
            continue
        where = " + ".join(("docs/cli.md " if not p[0].startswith("docs/") else "") + p[0] for p in parts)
        text = "\n".join(p[1] for p in parts)
        takes_policy = "[policy flags]" in text
        mentioned = doc_flags(text)
        shared = set()
        if takes_policy:
            shared = policy_flags | doc_flags(preamble_prose)
            where += " + the shared policy flags"
        documented = mentioned | shared
        # --help -> docs
        for flag in sorted(help_set - GLOBAL_FLAGS):
            counts["flags"] += 1
            if flag in documented:
                results.ok()
            else:
                results.fail(f"`rebound {sub} --help` has {flag}, but the docs ({where}) do not mention it")
        # docs -> --help
        for flag in sorted(mentioned - GLOBAL_FLAGS):
            counts["flags"] += 1
            if flag in help_set:
                results.ok()
            else:
                results.fail(f"the docs ({where}) mention {flag}, but `rebound {sub} --help` has no such flag")
        for flag in sorted(shared - mentioned - GLOBAL_FLAGS):
            counts["flags"] += 1
            if flag in help_set:
                results.ok()
            else:
                results.fail(
                    f"docs/cli.md's shared policy flags (the `policy flags:` line and the text after the "
                    f"synopsis) name {flag}, and `rebound {sub}` takes [policy flags], but "
                    f"`rebound {sub} --help` has no such flag"
                )
    return counts


# --------------------------------------------------------------------------
# 3. Commands in the docs

NUMBER = r"[-+]?\d+(?:[.,]\d+)*"


def line_pattern(doc_line: str) -> re.Pattern:
    parts = []
    for m in re.finditer(r"(\s+)|(\d+(?:[.,]\d+)*)|(.)", doc_line.strip()):
        if m.group(1):
            parts.append(r"\s+")
        elif m.group(2):
            parts.append(NUMBER)
        else:
            parts.append(re.escape(m.group(3)))
    return re.compile("".join(parts))


def doc_commands(root: str) -> list[tuple[str, int, str, list[str]]]:
    out = []
    for rel, text in doc_texts(root):
        for fence in fences(text):
            i = 0
            lines = fence.lines
            while i < len(lines):
                if not re.match(r"^\s*\$ rebound\b", lines[i]):
                    i += 1
                    continue
                line_no = fence.line + i
                cmd = lines[i].strip()[2:]
                while cmd.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd = cmd[:-1] + " " + lines[i].strip()
                i += 1
                output = []
                while i < len(lines) and not re.match(r"^\s*\$ ", lines[i]):
                    output.append(lines[i])
                    i += 1
                # A command shown without output must still run and exit 0.
                out.append((rel, line_no, cmd, output))
    return out


def check_commands(args, results: Results) -> dict:
    counts = {"run": 0, "skipped": 0}
    for rel, line_no, cmd, output in doc_commands(args.root):
        where = f"{rel}:{line_no} `$ {cmd}`"
        argv = shlex.split(cmd)
        reason = None
        if "http://" in cmd or "https://" in cmd:
            reason = "needs the network"
        elif len(argv) > 1 and argv[1] == "run" and "--" in argv:
            rest = argv[argv.index("--") + 1 :]
            if rest and shutil.which(rest[0]) is None and not os.path.exists(os.path.join(args.root, rest[0])):
                reason = f"runs {rest[0]}, which is not on this machine"
        if reason:
            counts["skipped"] += 1
            print(f"skipped: {where}: {reason}")
            continue
        argv[0] = args.rebound
        counts["run"] += 1
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=args.root)
            real = (p.stdout + p.stderr).splitlines()
            status = f"exit {p.returncode}"
        except subprocess.TimeoutExpired:
            results.fail(f"{where}: did not finish within 60 s")
            continue
        real_stripped = [l.strip() for l in real]
        bad = []
        if not any(l.strip() for l in output) and p.returncode != 0:
            bad.append(f"    shown without output, it exited {p.returncode}: {p.stderr.strip()[:300]}")
        for n, doc_line in enumerate(output):
            s = doc_line.strip()
            if not s or s == "...":
                continue
            pat = line_pattern(s)
            if any(pat.fullmatch(r) for r in real_stripped):
                continue
            close = max(real_stripped, key=lambda r: difflib.SequenceMatcher(None, s, r).ratio(), default="")
            bad.append(f"    doc ({rel}:{line_no + n + 1}): {s}\n    closest real line:  {close}")
        if bad:
            results.fail(f"{where} ({status}): {len(bad)} shown line(s) match no line of the output:\n" + "\n".join(bad))
        else:
            print(f"ok: {where}")
            results.ok()
    return counts


# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# 4. Tables: a row must belong to a table. A `|` line after a non-table line
# starts a table only when a `|---|` separator follows it; otherwise it
# renders as a paragraph (issue 25: a row of grpc.md's table had drifted
# below a paragraph).


def check_tables(args, results: Results) -> dict:
    counts = {"tables": 0}
    for rel in doc_files(args.root):
        with open(os.path.join(args.root, rel), encoding="utf-8") as f:
            lines = f.read().split("\n")
        in_fence = False
        bad = 0
        for i, line in enumerate(lines):
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
                continue
            if in_fence or not line.startswith("|"):
                continue
            prev = lines[i - 1] if i > 0 else ""
            if prev.startswith("|"):
                continue
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if re.match(r"^\|\s*:?-{3,}", nxt):
                counts["tables"] += 1
                continue
            bad += 1
            results.fail(f"{rel}:{i + 1}: a table row outside a table (no header and `|---|` "
                         f"line above it): {line[:80]}")
        if bad == 0:
            results.ok()
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="the repository root")
    ap.add_argument("--rebound", required=True, help="the rebound CLI binary")
    ap.add_argument("--include", action="append", help="include directory for the C++ blocks (repeatable; default ROOT/include)")
    ap.add_argument("--cxx", default="c++", help="the C++ compiler (default c++)")
    ap.add_argument("--only", choices=["cpp", "help", "commands", "tables"], action="append", help="run only these checks (repeatable)")
    ap.add_argument("--keep", metavar="DIR", help="copy the translation unit of each block that fails to compile to DIR")
    args = ap.parse_args()
    args.root = os.path.abspath(args.root)
    args.rebound = os.path.abspath(args.rebound)
    only = set(args.only or ["cpp", "help", "commands", "tables"])
    results = Results()
    t0 = time.monotonic()
    summary = []
    runnable = os.path.isfile(args.rebound) and os.access(args.rebound, os.X_OK)
    if not runnable and only & {"help", "commands"}:
        results.fail(f"--rebound {args.rebound} is not an executable: the --help and command checks did not run")
    checks = [
        ("help", "--help against docs/cli.md", check_help,
         lambda c: f"help: {c['flags']} flag checks", runnable),
        ("commands", "commands in README.md and docs/*.md", check_commands,
         lambda c: f"commands: {c['run']} run, {c['skipped']} skipped", runnable),
        ("tables", "tables in README.md and docs/*.md", check_tables,
         lambda c: f"tables: {c['tables']}", True),
        ("cpp", "C++ blocks", check_cpp,
         lambda c: f"C++ blocks: {c['compiled']} compiled, {c['pseudo']} pseudo", True),
    ]
    for name, title, fn, describe, can_run in checks:
        if name not in only or not can_run:
            continue
        print(f"== {title}", flush=True)
        try:
            summary.append(describe(fn(args, results)))
        except Exception as e:  # a broken doc or contexts file is a failure, not a traceback
            results.fail(f"the {title} check stopped: {type(e).__name__}: {e}")
    print(f"({'; '.join(summary + [f'{time.monotonic() - t0:.0f}s'])})")
    if results.failed:
        print(f"\n{results.failed} failure(s):")
        for m in results.messages:
            print("  - " + m.split("\n")[0])
    print(f"{results.passed} passed, {results.failed} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
