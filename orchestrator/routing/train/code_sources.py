"""Real code for the generated code prompts: installed permissive sources and captured errors."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

NPM = Path("/usr/lib/node_modules/npm/node_modules")
STDLIB_MODULES = [
    "json/decoder.py",
    "json/encoder.py",
    "textwrap.py",
    "difflib.py",
    "heapq.py",
    "bisect.py",
    "fractions.py",
    "statistics.py",
    "shlex.py",
    "csv.py",
    "calendar.py",
    "string.py",
    "ipaddress.py",
    "urllib/parse.py",
    "functools.py",
    "collections/__init__.py",
    "pathlib.py",
    "argparse.py",
    "configparser.py",
    "base64.py",
    "colorsys.py",
    "graphlib.py",
    "dataclasses.py",
    "email/utils.py",
    "http/cookies.py",
    "zipfile.py",
    "gettext.py",
    "random.py",
    "uuid.py",
    "sched.py",
    "queue.py",
    "fnmatch.py",
    "glob.py",
    "shutil.py",
    "tempfile.py",
    "pprint.py",
    "reprlib.py",
    "copy.py",
    "enum.py",
    "datetime.py",
    "wave.py",
    "html/parser.py",
    "ast.py",
    "contextlib.py",
    "inspect.py",
    "logging/__init__.py",
    "threading.py",
    "tokenize.py",
]
LONG_MODULES = [
    "heapq.py",
    "bisect.py",
    "fractions.py",
    "statistics.py",
    "shlex.py",
    "textwrap.py",
    "graphlib.py",
    "sched.py",
    "queue.py",
    "fnmatch.py",
    "colorsys.py",
    "json/decoder.py",
    "json/encoder.py",
    "reprlib.py",
    "difflib.py",
    "calendar.py",
    "ipaddress.py",
    "base64.py",
    "string.py",
    "csv.py",
    "glob.py",
    "copy.py",
    "pprint.py",
    "urllib/parse.py",
    "configparser.py",
    "http/cookies.py",
    "wave.py",
    "uuid.py",
]
PACKAGES = {"click": "click", "httpx": "httpx", "attrs": "attr", "humanize": "humanize"}
JS_FILES = (
    ("ms", "index.js"),
    ("semver", "classes/range.js"),
    ("semver", "classes/semver.js"),
    ("semver", "classes/comparator.js"),
    ("ini", "lib/ini.js"),
    ("fastest-levenshtein", "mod.js"),
    ("cssesc", "cssesc.js"),
    ("jsonparse", "jsonparse.js"),
    ("abbrev", "lib/index.js"),
    ("debug", "src/common.js"),
    ("debug", "src/node.js"),
)
LANGS = {"py": "Python", "js": "JavaScript", "rs": "Rust", "c": "C", "cpp": "C++", "java": "Java"}
CAPTURE_ROOT = "/home/dev/project"


@dataclass(frozen=True)
class Snippet:
    """A piece of real code with where it came from and under which licence."""

    code: str
    lang: str
    file: str
    source: str
    licence: str


def python_functions(path: Path, rel: str, source: str, licence: str) -> list[Snippet]:
    """Every function or method of 6-70 lines in a Python file, dedented."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            if 6 <= node.end_lineno - start <= 70:
                code = textwrap.dedent("\n".join(lines[start : node.end_lineno]))
                out.append(Snippet(code, "Python", rel, source, licence))
    return out


def text_chunks(path: Path, lang: str, rel: str, source: str, licence: str) -> list[Snippet]:
    """Blank-line separated blocks merged into chunks of 12-50 lines, mostly code."""
    chunks, current = [], []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        current.extend([*block.strip("\n").splitlines(), ""])
        if len(current) >= 12:
            chunks.append(current[:50])
            current = []
    out = []
    for chunk in chunks:
        comments = sum(line.lstrip().startswith(("//", "*", "/*")) for line in chunk)
        if comments * 2 < len(chunk):
            out.append(Snippet("\n".join(chunk).strip("\n"), lang, rel, source, licence))
    return out


def _stdlib_pool(stdlib: Path) -> list[Snippet]:
    out = []
    for rel in STDLIB_MODULES:
        src = f"authored:switchyard+cpython-3.11 Lib/{rel}"
        out += python_functions(stdlib / rel, rel, src, "PSF-2.0")
    return out


def _package_pool() -> list[Snippet]:
    purelib = Path(sysconfig.get_paths()["purelib"])
    out = []
    for dist, pkg in PACKAGES.items():
        licence = metadata.metadata(dist)["License-Expression"] or "see package"
        version = metadata.version(dist)
        for path in sorted((purelib / pkg).rglob("*.py")):
            rel = path.relative_to(purelib).as_posix()
            src = f"authored:switchyard+{dist}-{version} {rel}"
            out += python_functions(path, rel, src, licence)
    return out


def _js_pool() -> list[Snippet]:
    out = []
    for module, rel in JS_FILES:
        meta = json.loads((NPM / module / "package.json").read_text(encoding="utf-8"))
        src = f"authored:switchyard+npm {module}-{meta['version']} {rel}"
        out += text_chunks(NPM / module / rel, "JavaScript", rel, src, meta["license"])
    return out


def _c_pool() -> list[Snippet]:
    librt = Path(sysconfig.get_paths()["purelib"]) / "mypyc" / "lib-rt"
    version = metadata.version("mypy")
    out = []
    for path in sorted(librt.glob("*.c")):
        src = f"authored:switchyard+mypy-{version} mypyc/lib-rt/{path.name}"
        out += text_chunks(path, "C", path.name, src, "MIT")
    return out


def snippet_pools(stdlib: Path) -> dict[str, list[Snippet]]:
    return {
        "python-stdlib": _stdlib_pool(stdlib),
        "python-packages": _package_pool(),
        "javascript": _js_pool(),
        "c": _c_pool(),
    }


def long_files(stdlib: Path, limit: int = 7500) -> list[Snippet]:
    """A contiguous run of top-level statements of each module, 2,500 to ``limit`` characters."""
    out = []
    for rel in LONG_MODULES:
        text = (stdlib / rel).read_text(encoding="utf-8")
        lines = text.splitlines()
        defs = [n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        for first in defs:
            start = min([first.lineno] + [d.lineno for d in first.decorator_list]) - 1
            end = start
            for node in defs[defs.index(first) :]:
                if node.end_lineno and len("\n".join(lines[start : node.end_lineno])) <= limit:
                    end = node.end_lineno
            code = "\n".join(lines[start:end])
            if len(code) >= 2500:
                src = f"authored:switchyard+cpython-3.11 Lib/{rel}"
                out.append(Snippet(code, "Python", f"Lib/{rel}", src, "PSF-2.0"))
                break
    return out


def read_broken(path: Path) -> list[tuple[str, str, str]]:
    """(lang, file name, code) for each ``=== lang file`` section."""
    cases: list[tuple[str, str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("=== "):
            lang, name = line[4:].split()
            cases.append((lang, name, []))
        elif cases:
            cases[-1][2].append(line)
    return [(lang, name, "\n".join(body).strip("\n")) for lang, name, body in cases]


def _commands(lang: str, name: str) -> tuple[str, list[list[str]]]:
    compile_native = {"rs": ["rustc", "--edition", "2021", name, "-o", "prog"]}
    compile_native["c"] = ["gcc", "-g", "-fsanitize=address", "-o", "prog", name]
    compile_native["cpp"] = ["g++", "-g", "-fsanitize=address", "-o", "prog", name]
    if lang in compile_native:
        return compile_native[lang][0], [compile_native[lang], ["./prog"]]
    tools = {"py": [sys.executable, name], "js": ["node", name], "java": ["java", name]}
    return {"py": "python-3.11", "js": "node", "java": "java-17"}[lang], [tools[lang]]


def run_case(lang: str, name: str, code: str) -> dict[str, str]:
    """Run one broken program in a scratch folder; its error output, paths made neutral."""
    tool, steps = _commands(lang, name)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_text(code + "\n", encoding="utf-8")
        output = ""
        for step in steps:
            done = subprocess.run(step, cwd=tmp, capture_output=True, text=True, timeout=120)
            output = (done.stdout + done.stderr).strip("\n")
            if done.returncode != 0:
                break
        output = output.replace(str(Path(tmp).resolve()), CAPTURE_ROOT).replace(tmp, CAPTURE_ROOT)
    lines = output.splitlines()
    error = "\n".join(lines[:80])
    return {"lang": LANGS[lang], "file": name, "code": code, "error": error, "tool": tool}


def capture_errors(path: Path) -> list[dict[str, str]]:
    return [run_case(lang, name, code) for lang, name, code in read_broken(path)]
