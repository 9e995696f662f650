"""Lets a `configs/` folder in the current directory override or add animegan configs.

Hydra discovers SearchPathPlugins in the `hydra_plugins` namespace package. This one acts
only on animegan's own config search path and puts `./configs` in front of the shipped
configs, so `./configs/dataset/mine.yaml` adds a dataset and `./configs/model/dcgan64.yaml`
replaces the shipped one.
"""

import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

SHIPPED = "pkg://animegan.configs"


class AnimeganLocalConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not any(element.path == SHIPPED for element in search_path.get_path()):
            return  # another Hydra application: leave it alone
        local = os.path.join(os.getcwd(), "configs")
        if os.path.isdir(local):
            search_path.prepend(provider="animegan-local", path=f"file://{local}")
