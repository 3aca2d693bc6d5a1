"""belfry-build-py: builds a belfry plugin written in Python into a WebAssembly component with
componentize-py, against the contract in ``wit/plugin@1``.

    belfry-build-py [PLUGIN_DIR] [--module app] [-o OUT.wasm] [--package DIR] [--wit DIR]
    belfry-build-py bindings [PLUGIN_DIR] [-o OUT_DIR]     # typed bindings for editors

PLUGIN_DIR (default: the current directory) holds ``manifest.toml``; its ``kind`` picks the
world and its ``wit`` must be a 1.x version. ``--package DIR`` also lays out the package belfry
loads: ``DIR/manifest.toml``, ``DIR/plugin.wasm``, ``DIR/assets/**``.

A channel adapter's world is the contract's plus ``wasi:http/outgoing-handler`` (what
:mod:`belfry_plugin_sdk.http` uses), at the WASI version the host links (the WIT that
``sdk/install-guest-tools.sh`` copies from the host's wasmtime-wasi-http crate).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent
REPO = SDK.parent.parent
KINDS = ("notifier", "renderer", "channel-adapter")


class BuildError(Exception):
    pass


def tools_dir() -> Path:
    if os.environ.get("BELFRY_GUEST_TOOLS"):
        return Path(os.environ["BELFRY_GUEST_TOOLS"])
    return Path(sys.prefix).parent  # target/guest-tools/venv -> target/guest-tools


def read_manifest(plugin_dir: Path) -> dict:
    path = plugin_dir / "manifest.toml"
    try:
        manifest = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BuildError(f"no manifest.toml in {plugin_dir}") from None
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{path}: {e}") from None
    for key in ("name", "kind", "wit"):
        if not isinstance(manifest.get(key), str):
            raise BuildError(f"{path}: no {key} = \"...\"")
    if manifest["kind"] not in KINDS:
        raise BuildError(f"{path}: kind = \"{manifest['kind']}\" is not one of {', '.join(KINDS)}")
    if not re.fullmatch(r"1\.\d+\.\d+", manifest["wit"]):
        raise BuildError(f"{path}: wit = \"{manifest['wit']}\", but this SDK builds against "
                         "contract 1.x (wit = \"1.0.0\")")
    return manifest


def wit_tree(contract: Path, into: Path) -> tuple[Path, list[str]]:
    """Lays out the WIT componentize-py reads; returns it and the interface-name options."""
    if not (contract / "types.wit").is_file():
        raise BuildError(f"no contract at {contract} (--wit DIR)")
    wasi = tools_dir() / "wit" / "wasi"
    if not (wasi / "http.wit").is_file():
        raise BuildError(f"no WASI WIT in {wasi}: run sdk/install-guest-tools.sh")
    package = re.search(r"^package\s+([^;]+);", (contract / "types.wit").read_text(), re.M)
    http = re.search(r"^package\s+wasi:http@([^;\s]+);", (wasi / "http.wit").read_text(), re.M)
    if not package or not http:
        raise BuildError("cannot read the package lines of the contract or wasi:http")
    contract_version = package.group(1).split("@")[1]
    http_version = http.group(1)
    deps = into / "deps"
    (deps / "plugin").mkdir(parents=True)
    for f in contract.glob("*.wit"):
        shutil.copy(f, deps / "plugin" / f.name)
    for f in wasi.glob("*.wit"):
        shutil.copy(f, deps / f.name)
    v = contract_version
    (into / "worlds.wit").write_text(f"""package belfry:python-sdk@{v};

world notifier {{
    include belfry:plugin/notifier@{v};
}}

world renderer {{
    include belfry:plugin/renderer@{v};
}}

world channel-adapter {{
    include belfry:plugin/channel-adapter@{v};
    import wasi:http/outgoing-handler@{http_version};
}}
""")
    # Stable module names whatever else the world imports: wit_world.imports.types is the
    # contract's, wit_world.imports.http_types wasi:http's.
    names = ["--import-interface-name", f"belfry:plugin/types@{v}=types",
             "--import-interface-name", f"wasi:http/types@{http_version}=http_types"]
    return into, names


def componentize_py() -> str:
    exe = Path(sys.prefix) / "bin" / "componentize-py"
    if exe.is_file():
        return str(exe)
    found = shutil.which("componentize-py")
    if not found:
        raise BuildError("componentize-py is not installed: run sdk/install-guest-tools.sh")
    return found


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        # componentize-py prints a Rust backtrace after the cause; the cause is what helps.
        err = done.stderr.split("\nStack backtrace:")[0].strip()
        raise BuildError(f"componentize-py failed ({done.returncode}):\n{err}")


def build(args: argparse.Namespace) -> None:
    plugin_dir = Path(args.dir).resolve()
    manifest = read_manifest(plugin_dir)
    module = args.module
    if not (plugin_dir / f"{module}.py").is_file() and not (plugin_dir / module).is_dir():
        raise BuildError(f"no {module}.py in {plugin_dir} (--module NAME)")
    out = Path(args.out).resolve() if args.out else plugin_dir / "target" / f"{manifest['name']}.wasm"
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="belfry-build-py-") as tmp:
        wit, names = wit_tree(Path(args.wit).resolve(), Path(tmp) / "wit")
        run([componentize_py(), "-q", "-d", str(wit), "-w", manifest["kind"], *names,
             "componentize", module, "-p", str(plugin_dir), "-p", str(SDK), "-o", str(out)])
    size = out.stat().st_size
    print(f"belfry-build-py: {manifest['name']} ({manifest['kind']}, wit {manifest['wit']}) -> {out} "
          f"({size / 1048576:.1f} MiB, {time.monotonic() - started:.1f} s)", file=sys.stderr)
    if args.package:
        pkg = Path(args.package).resolve()
        shutil.rmtree(pkg, ignore_errors=True)
        pkg.mkdir(parents=True)
        shutil.copy(plugin_dir / "manifest.toml", pkg / "manifest.toml")
        shutil.copy(out, pkg / "plugin.wasm")
        if (plugin_dir / "assets").is_dir():
            shutil.copytree(plugin_dir / "assets", pkg / "assets")
        print(f"belfry-build-py: package {pkg}", file=sys.stderr)


def bindings(args: argparse.Namespace) -> None:
    plugin_dir = Path(args.dir).resolve()
    manifest = read_manifest(plugin_dir)
    out = Path(args.out).resolve() if args.out else plugin_dir / "bindings"
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="belfry-build-py-") as tmp:
        wit, names = wit_tree(Path(args.wit).resolve(), Path(tmp) / "wit")
        run([componentize_py(), "-q", "-d", str(wit), "-w", manifest["kind"], *names,
             "bindings", str(out)])
    print(f"belfry-build-py: bindings for the {manifest['kind']} world in {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    default_wit = str(REPO / "wit" / "plugin@1")
    if argv[:1] == ["bindings"]:
        p = argparse.ArgumentParser(prog="belfry-build-py bindings")
        p.add_argument("dir", nargs="?", default=".")
        p.add_argument("-o", "--out")
        p.add_argument("--wit", default=default_wit)
        action, args = bindings, p.parse_args(argv[1:])
    else:
        p = argparse.ArgumentParser(prog="belfry-build-py")
        p.add_argument("dir", nargs="?", default=".")
        p.add_argument("--module", default="app", help="the Python module defining the export class")
        p.add_argument("-o", "--out")
        p.add_argument("--package", help="also write a package directory here")
        p.add_argument("--wit", default=default_wit)
        action, args = build, p.parse_args(argv)
    try:
        action(args)
    except BuildError as e:
        print(f"belfry-build-py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
