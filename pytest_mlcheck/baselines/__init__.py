"""The baseline store: TOML files of metric baselines, reviewed in pull requests.

Layout. A test module ``tests/test_model.py`` keeps its baselines in
``tests/mlcheck_baselines/test_model.toml`` (the ini key ``mlcheck_baseline_dir``
moves them under one directory, keeping the module's relative folder and file name).
One table per test, keyed by the test's id inside its module (parametrized ids are
quoted), one sub-table per ``name=`` group (``default`` without a name)::

    [test_accuracy.default]
    recorded_in = {python = "3.11.7", numpy = "2.4.6", torch = "2.13.0", ...}

    [test_accuracy.default.metrics]
    accuracy = 0.9125
    loss = 0.23117001354694366

Entries keyed by environment facets (``env=("device",)``) live one level down,
under ``[test_x.default.variants."device=cpu"]``. Arrays of ``check_array`` are
compressed ``.npz`` files beside the TOML file, named by a hash of their entry and
content, so no test id or name can reach outside the baseline directory.

The package reads in the order a baseline travels:

* :mod:`.paths`: where files live and how entries and array files are named;
* :mod:`.codec`: bytes to validated data and back (BOM, CRLF, errors that name
  the file, entry and reason);
* :mod:`.merge`: staged entries merged into the text, comments kept;
* :mod:`.store`: the per-session store, the lock and the write protocol (arrays
  and TOML commit together);
* :mod:`.prune`: the end of the session, unused entries and pruning, also from the
  merged reports of a sharded suite. Only this module knows about pytest.
"""

from __future__ import annotations

from ..atomic import atomic_write_bytes
from .codec import (
    ENTRY_KEYS,
    HEADER,
    BaselineEntryError,
    BaselineFileError,
    FileText,
    check_recordable,
    decode,
    entries_of,
    parse_cached,
    parse_toml,
    read_file,
    render_entry,
    toml_value,
    validate_entry,
)
from .merge import Staged, merge_into_text
from .paths import (
    DEFAULT_GROUP,
    array_file_name,
    baseline_path,
    entry_label,
    glob_match,
    local_id,
    module_for_baseline,
    module_of,
    parse_variant,
    toml_key,
    toml_string,
    variant_key,
)
from .prune import find_unused, finish_baselines, whole_suite_reason
from .store import (
    ArrayFileError,
    BaselineFile,
    BaselineStore,
    WriteOutcome,
    lock_for,
    read_npz,
    save_npz,
    write_file,
)

__all__ = [
    "DEFAULT_GROUP", "ENTRY_KEYS", "HEADER", "ArrayFileError", "BaselineEntryError",
    "BaselineFile", "BaselineFileError", "BaselineStore", "FileText", "Staged",
    "WriteOutcome", "array_file_name", "atomic_write_bytes", "baseline_path",
    "check_recordable", "decode", "entries_of", "entry_label", "find_unused",
    "finish_baselines", "glob_match", "local_id", "lock_for", "merge_into_text",
    "module_for_baseline", "module_of", "parse_cached", "parse_toml", "parse_variant",
    "read_file", "read_npz", "render_entry", "save_npz", "toml_key", "toml_string",
    "toml_value", "validate_entry", "variant_key", "whole_suite_reason", "write_file",
]
