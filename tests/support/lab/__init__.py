"""A researcher's own additions, outside the package: a conditioning mode (one YAML in `conf/conditioning/`) and a
sampling arm (one module here and one YAML in `conf/arms/`), found through `hydra.searchpath`."""
