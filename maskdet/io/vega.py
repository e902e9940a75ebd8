"""The page template for `dvc plots show` that works offline.

DVC's own page loads Vega, Vega-Lite and vega-embed from a CDN: offline (and on
this project's machines, which reach only the package registries) it is a
blank page. This template carries the three scripts inline, taken from their
npm packages (pinned in io.assets). `.dvc/config` points DVC at it
(`plots.html_template`); DVC fills in `{plot_divs}`, and with no `{scripts}`
placeholder here it adds no CDN tags. `make setup` writes it (git-ignored: it is
800 KB of minified JavaScript built from pinned, checked archives).

    python -m maskdet.io.vega [PATH]     # default .dvc/plots/offline.html
"""

from __future__ import annotations

import sys
from pathlib import Path

from maskdet.io import assets
from maskdet.io.atomic import write_text_atomic

DEFAULT_PATH = Path(".dvc") / "plots" / "offline.html"

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>maskdet: DVC plots</title>
{inline}
<style>table {{ border-spacing: 15px; }} body {{ font-family: sans-serif; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def offline_page() -> str:
    scripts = []
    for asset in assets.VEGA_SCRIPTS:
        code = assets.extract(asset).read_text(encoding="utf-8")
        scripts.append("<script>\n" + code.replace("</script", "<\\/script") + "\n</script>")
    return PAGE.format(inline="\n".join(scripts))


def write_offline_template(path: Path = DEFAULT_PATH) -> Path:
    write_text_atomic(path, offline_page())
    return path


if __name__ == "__main__":
    print(write_offline_template(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH))
