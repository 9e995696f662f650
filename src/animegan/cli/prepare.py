"""`animegan-prepare`: decode a folder dataset once into its cache, before a long run.

    animegan-prepare dataset=anime36k                       # at the default model's 64 px
    animegan-prepare dataset=naruto model=dcgan128          # at 128 px
    animegan-prepare dataset=folder dataset.root=/my/images model.image_size=32

The config is composed and checked exactly as `animegan-train` does (same overrides,
same ./configs), so the cache built here is the one training will find. A second call
only confirms the cache is up to date. Prints a summary table: kept, dropped by reason,
converted, cache path and size, seconds.
"""

from __future__ import annotations

import sys
from typing import List, Optional

from animegan.cli import one_line_errors
from animegan.errors import AnimeganError

COMMAND = "animegan-prepare"


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return
    try:
        with one_line_errors(COMMAND):
            conf, prepared = run(argv)
    except KeyboardInterrupt:
        print(f"{COMMAND}: interrupted; no cache was written", file=sys.stderr)
        raise SystemExit(130)
    print(summary(conf.dataset, conf.model.image_size, prepared))


def run(argv: List[str]):
    """Compose and check the config, then build or confirm the cache: (RunConfig, Prepared)."""
    if any(a in ("-m", "--multirun") for a in argv):
        raise AnimeganError("prepare one dataset and size at a time (no -m sweeps)")
    from animegan.compose import compose_config
    from animegan.config_checks import validate
    from animegan.data.cache import prepare

    conf = validate(compose_config(argv))
    if conf.dataset.kind != "folder":
        raise AnimeganError(f"dataset '{conf.dataset.name}' is drawn at start-up, not read from a folder: "
                            "nothing to prepare (pick a folder preset, e.g. dataset=anime36k)")
    return conf, prepare(conf.dataset, conf.model.image_size, progress=True)


def summary(dataset, size: int, prepared) -> str:
    """The table printed at the end: conversions indented under kept, reasons under dropped."""
    m = prepared.manifest
    how = f"built, {m['files'] / max(prepared.seconds, 1e-9):.0f} files/s" if prepared.built else "up to date, reused"
    rows = [
        ("source", m["source_root"]),
        ("size", f"{size}x{size} (crop {m['options']['crop']}, filter {m['options']['resize_filter']}, "
                 f"min_size {m['options']['min_size']})"),
        ("files", f"{m['files']} images" + (f" (+{m['other_files_ignored']} other files ignored)"
                                            if m["other_files_ignored"] else "")),
        ("kept", str(m["kept"])),
        *((f"  {note}", str(n)) for note, n in m["converted"].items()),  # kept after a conversion
        ("dropped", str(sum(m["dropped"].values()))),
        *((f"  {reason}", str(n)) for reason, n in m["dropped"].items()),
        ("cache", f"{prepared.data_path} ({m['data_bytes'] / 1e6:.1f} MB)"),
        ("manifest", str(prepared.manifest_path)),
        ("time", f"{prepared.seconds:.1f} s ({how})"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{COMMAND}: dataset '{dataset.name}'"] + [f"  {label:<{width}}{value}" for label, value in rows]
    return "\n".join(lines)
