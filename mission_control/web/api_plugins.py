"""`/api/plugins` and `/api/offsite`: the loaded plugins and the last off-site result per target (admin)."""
from ..plugin_manager import describe_plugins
from .http import json_response, require
from .openapi_schemas import INT_OR_NULL, STR_OR_NULL, array, obj, operation, ref, response
from .operations import Operation


def plugins_list(mc, request):
    require(mc, request, "admin")
    return json_response({"plugins": describe_plugins(mc.pm),
                          "blocked": sorted(mc.config.disabled_plugins)})


def offsite_list(mc, request):
    require(mc, request, "admin")
    return json_response({"targets": mc.offsite.list(),
                          "verify_key": mc.offsite.signer.verify_key(create=False)})


#: Copies retention would delete but whose Object Lock has not expired (not a failure).
HELD = {**array(obj(name={"type": "string"}, until=INT_OR_NULL)),
        "description": "copies past the retention count still held by their lock, each until "
                       "when (unix seconds); deleted by a later run once it expires"}

COPY_NAMES = {"changed": {**array({"type": "string"}), "description": "kept copies whose "
                           "stored object no longer matches what was uploaded (someone replaced "
                           "it): not counted; they fail the verdict"},
              "missing": {**array({"type": "string"}), "description": "copies among the "
                          "newest kept by this service's record that are gone from the "
                          "target without having been pruned here (someone deleted them); "
                          "they fail the verdict"},
              "broken": {**array(obj(name={"type": "string"}, ancestor={"type": "string"})),
                         "description": "kept incremental copies that cannot be restored: "
                         "`ancestor`, an older copy their chain needs, is missing or changed; "
                         "they fail the verdict"},
              "chained": {**array({"type": "string"}), "description": "older copies kept "
                          "only because a kept incremental copy's chain needs them"},
              "uncataloged": {**array({"type": "string"}), "description": "kept copies "
                              "without a catalog entry that could be written (or renewed) "
                              "by the last run: `recover` may not use them; a warning"}}

#: What the last copy uploaded: a full copy, or only the pages that changed (issue 24).
LAST_COPY = {"kind": {"enum": ["full", "delta", None], "description": "the last copy's kind: "
                      "`full` (the whole database) or `delta` (only the pages that changed "
                      "since the copy before it); null when the last copy failed"},
             "uploaded_bytes": {**INT_OR_NULL, "description": "bytes the last copy uploaded "
                                "(a delta copy: its pack and manifest)"},
             "chain_length": {**INT_OR_NULL, "description": "delta copies from the last full "
                              "copy to the last copy (0: the last copy is a full copy)"}}

SCHEMAS = {
    "Plugin": obj(name={"type": "string"},
                  kind={"enum": ["builtin", "entry_point", "drop_in", "registered"]},
                  version=STR_OR_NULL, hooks=array({"type": "string"})),
    "OffsiteResult": obj(target={"type": "string"}, ok={"type": "boolean"},
                         backup=STR_OR_NULL, location=STR_OR_NULL, message=STR_OR_NULL,
                         detail={}, finished_at=INT_OR_NULL,
                         stored_size={**INT_OR_NULL, "description": "bytes stored off-site "
                                      "(after compression and encryption)"},
                         ratio={"type": ["number", "null"],
                                "description": "stored size / backup size"},
                         held=HELD, **COPY_NAMES, **LAST_COPY),
}

OPERATIONS = [
    Operation("GET", "/api/plugins", plugins_list, "listPlugins", operation(
        "The loaded plugins", response("Plugins", obj(
            plugins=array(ref("Plugin")), blocked=array({"type": "string"}))), tag="plugins")),
    Operation("GET", "/api/offsite", offsite_list, "listOffsiteResults", operation(
        "The last off-site copy result per target", response("Targets", obj(
            targets=array(ref("OffsiteResult")), verify_key={
                **STR_OR_NULL, "description": "the Ed25519 key (ed25519:…) that verifies this "
                "service's signed records of its off-site copies; keep it with the age identity "
                "(null until the first copy or start)"})), tag="plugins")),
]
