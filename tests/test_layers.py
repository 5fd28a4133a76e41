"""The layer rule of ARCHITECTURE.md, checked by an AST walk over every import in the package.

A module may import from its own package and from packages in lower layers only; peers in one
layer (e.g. training and synthetic) may not import each other. Torch-free layers may import
torch and other heavy libraries only inside functions. The table below is parsed out of
ARCHITECTURE.md, so the document and the rule cannot drift apart.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "advscale"
HEAVY = ("torch", "torchvision", "timm", "h5py", "matplotlib", "sklearn", "scipy", "pandas",
         "safetensors", "autoattack")


def read_layers(text: str) -> tuple[dict[str, int], set[str]]:
    """``{package: layer}`` and the torch-free packages from ARCHITECTURE.md's layer table.

    Rows look like ``| 3 | `models` | ... | torch |`` (layer number, packages, ..., ``torch`` or
    ``torch-free`` in the last column).
    """
    layers: dict[str, int] = {}
    light: set[str] = set()
    for m in re.finditer(r"^\|\s*(\d+)\s*\|([^|]+)\|.*\|\s*(torch|torch-free)\s*\|\s*$", text,
                         re.M):
        for pkg in re.findall(r"`([a-z_]+)`", m.group(2)):
            layers[pkg] = int(m.group(1))
            if m.group(3) == "torch-free":
                light.add(pkg)
    return layers, light


LAYERS, TORCH_FREE = read_layers((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))


def read_front_end_rule(text: str) -> tuple[set[str], set[str]]:
    """``({packages cli may import}, {record writers it may import from records})`` from
    ARCHITECTURE.md's sentence ``**`cli` imports only `api`, ... (`write_record`, ...) and
    itself**``."""
    m = re.search(r"\*\*`cli` imports\s+only(.*?)\*\*", text, re.S)
    assert m, "ARCHITECTURE.md states no import rule for cli"
    rule = m.group(1)
    writers = set(re.findall(r"`([a-z_]+)`", re.search(r"\((.*?)\)", rule, re.S).group(1)))
    packages = set(re.findall(r"`([a-z_]+)`", re.sub(r"\(.*?\)", "", rule, flags=re.S)))
    return packages | {"cli"}, writers


CLI_MAY_IMPORT, RECORD_WRITERS = read_front_end_rule(
    (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))


def package_of(module: str) -> str | None:
    """``advscale.attacks.pgd`` → ``attacks``; ``advscale`` (the root) → ``advscale``."""
    parts = module.split(".")
    if parts[0] != "advscale":
        return None
    return parts[1] if len(parts) > 1 else "advscale"


def imports_of(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level?) for every import statement."""
    out = []
    top = {id(n) for n in getattr(tree, "body", [])}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = node.module
            if base == "advscale":  # from advscale import records → advscale.records
                out += [(f"advscale.{a.name}", node.lineno, id(node) in top) for a in node.names]
            else:
                out.append((base, node.lineno, id(node) in top))
    return out


def front_end_violations(files: dict[str, str]) -> list[str]:
    """Imports of ``advscale/cli/`` beyond the API, errors, version and the record writers."""
    bad = []
    for rel, src in files.items():
        if not rel.startswith("advscale/cli/"):
            continue
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" if node.module == "advscale" else node.module
                         for a in node.names]
                what = {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                names, what = [a.name for a in node.names], set()
            else:
                continue
            for name in names:
                there = package_of(name)
                if there == "records":  # only its writers
                    if name == "advscale.records" and what and what <= RECORD_WRITERS:
                        continue
                elif there is None or there in CLI_MAY_IMPORT:
                    continue
                bad.append(f"{rel}:{node.lineno}: the CLI imports {name} "
                           f"{sorted(what) if what else ''}; it may import only the API")
    return bad


def violations(files: dict[str, str]) -> list[str]:
    """Layer-rule breaches in ``{relative path: source}``."""
    bad = front_end_violations(files)
    for rel, src in files.items():
        parts = Path(rel).with_suffix("").parts
        mod = ".".join(("advscale", *parts[1:])) if parts[0] == "advscale" else ".".join(parts)
        mod = mod.removesuffix(".__init__")
        here = package_of(mod)
        if here not in LAYERS:
            bad.append(f"{rel}: package {here!r} is not in ARCHITECTURE.md's layer table")
            continue
        for name, line, top in imports_of(ast.parse(src)):
            there = package_of(name)
            if there is None:
                if top and here in TORCH_FREE and name.split(".")[0] in HEAVY:
                    bad.append(f"{rel}:{line}: torch-free layer {here!r} imports {name} at "
                               "module level")
                continue
            if there == here:
                continue
            if there not in LAYERS:
                bad.append(f"{rel}:{line}: imports {name} from an unlisted package")
            elif LAYERS[there] >= LAYERS[here]:
                bad.append(f"{rel}:{line}: {here} (layer {LAYERS[here]}) imports {name} "
                           f"(layer {LAYERS[there]})")
    return bad


def package_files() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
            for p in sorted(PKG.rglob("*.py"))}


def test_layer_table_is_parsed():
    assert LAYERS["core"] < LAYERS["models"] < LAYERS["attacks"] < LAYERS["training"]
    assert LAYERS["training"] == LAYERS["synthetic"] == LAYERS["validity"]
    assert {"laws", "report", "energy", "records"} <= TORCH_FREE
    assert LAYERS["cli"] > LAYERS["advscale"] > LAYERS["api"] > LAYERS["report"] > LAYERS["laws"]


def test_every_import_points_down():
    bad = violations(package_files())
    assert not bad, "layer rule broken:\n" + "\n".join(bad)


def test_cli_imports_only_the_api():
    assert {"api", "errors", "version", "records", "cli"} == CLI_MAY_IMPORT
    assert "write_record" in RECORD_WRITERS
    bad = front_end_violations(package_files())
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("rel,line,why", [
    ("advscale/models/registry.py", "from advscale.training.loop import train", "layer"),
    ("advscale/attacks/pgd.py", "    from advscale.training import losses", "layer"),
    ("advscale/training/loop.py", "from advscale.synthetic import jobs", "peers"),
    ("advscale/laws/law.py", "import torch", "torch-free"),
    ("advscale/cli/train.py", "    from advscale.training.loop import train", "front end"),
    ("advscale/cli/fit.py", "from advscale.records import read_records", "front end"),
])
def test_a_back_import_fails(rel, line, why):
    """Adding one deliberate back-arrow (even inside a function) makes the check fail."""
    files = package_files()
    src = files[rel]
    if line.startswith("    "):
        src += "\n\ndef _probe():\n" + line + "\n"
    else:
        src = line + "\n" + src
    files[rel] = src
    bad = violations(files)
    assert len(bad) == 1 and rel in bad[0], bad
    assert ("torch-free" in bad[0]) == (why == "torch-free")


def test_import_advscale_is_light():
    """``import advscale`` (and the torch-free layers) load no torch."""
    code = ("import sys, advscale, advscale.records, advscale.laws, advscale.report, "
            "advscale.energy, advscale.core.units, advscale.core.jsonl; "
            "print([m for m in ('torch', 'h5py', 'matplotlib', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


FLAG = re.compile(r"(?<![\w-])--([a-z][\w-]*|\{)")


def flag_texts(files: dict[str, str]) -> list[str]:
    """``--flag`` text in the literal parts of ``AdvscaleError(...)`` messages outside
    ``advscale/cli/`` (and in the message column of ``TrainConfig._rules``-style tables)."""
    bad = []
    for rel, src in files.items():
        if rel.startswith("advscale/cli/"):
            continue
        for node in ast.walk(ast.parse(src)):
            if not (isinstance(node, ast.Call) and node.args and getattr(
                    node.func, "id", getattr(node.func, "attr", None)) == "AdvscaleError"):
                continue
            text = ast.unparse(node.args[0])  # the message as written, f-string fields too
            bad += [f"{rel}:{node.lineno}: --{m}" for m in FLAG.findall(text)]
    return bad


def test_library_errors_name_fields_not_flags():
    """A notebook caller never typed ``--eps``: library errors name the field (``eps``, with
    ``field="eps"``) and the CLI's error boundary writes the flag."""
    bad = flag_texts(package_files())
    assert not bad, "AdvscaleError messages with --flag text:\n" + "\n".join(bad)
    assert flag_texts({"advscale/x.py": 'raise AdvscaleError(f"--eps {e} is bad")'})
    assert flag_texts({"advscale/x.py": 'raise AdvscaleError(f"--{k} {v} is bad")'})
    assert not flag_texts({"advscale/cli/x.py": 'raise AdvscaleError("--eps is bad")'})
