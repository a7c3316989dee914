"""A YAML SafeLoader that refuses a mapping key given twice (PyYAML keeps the last one silently), shared
by the run spec, the benchmark file and the mixture file. No I/O."""

from __future__ import annotations

import yaml


class NoDuplicatesLoader(yaml.SafeLoader):
    """YAML SafeLoader that refuses a mapping key given twice (PyYAML keeps the last silently)."""


def _mapping_no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            dup = key in seen
            seen.add(key)
        except TypeError:  # unhashable key: let the normal constructor report it
            continue
        if dup:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


NoDuplicatesLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates)
