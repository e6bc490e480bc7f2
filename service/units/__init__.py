"""The unit tree: bodies of the organisation, their codes, levels and mailboxes."""

from service.units.errors import (
    InvalidTreeError,
    OwnUnitError,
    UnitCodeTakenError,
    UnitNotFoundError,
    UnknownUnitsError,
    UsernameTakenError,
)
from service.units.importing import ImportResult, import_tree
from service.units.models import ApiToken, Unit, User, name_key
from service.units.service import (
    covers_every_unit,
    export_tree,
    get_unit,
    lock_tree,
    move_unit,
    rename_unit,
    resolve_units,
    unit_in_scope,
    update_unit,
)
from service.units.tree import (
    MAX_LEVELS,
    MAX_MAILBOXES,
    UnitSpec,
    check_mailbox,
    code_key,
    dump_csv,
    dump_json,
    parse_tree,
    valid_code,
)

__all__ = [
    "MAX_LEVELS",
    "MAX_MAILBOXES",
    "ApiToken",
    "ImportResult",
    "InvalidTreeError",
    "OwnUnitError",
    "check_mailbox",
    "code_key",
    "covers_every_unit",
    "Unit",
    "UnitCodeTakenError",
    "UnitNotFoundError",
    "UnitSpec",
    "UnknownUnitsError",
    "User",
    "UsernameTakenError",
    "dump_csv",
    "dump_json",
    "export_tree",
    "get_unit",
    "import_tree",
    "lock_tree",
    "move_unit",
    "name_key",
    "parse_tree",
    "rename_unit",
    "resolve_units",
    "unit_in_scope",
    "update_unit",
    "valid_code",
]
