"""The optional modules off-site copies need (zstandard, pyrage, boto3), the extra that installs
each, and the codec settings refused at once while theirs is missing.

Nothing is imported here until a change is checked: a folder copy needs none of them.
"""

#: Module -> the extra of `mission-control-backup` that installs it.
EXTRAS = {"zstandard": "offsite-crypt", "pyrage": "offsite-crypt", "boto3": "s3"}


def missing(module):
    """None when `module` imports; else "<module>, which is not installed: pip install …"."""
    try:
        __import__(module)
    except ImportError:
        return (f"{module}, which is not installed: pip install "
                f"'mission-control-backup[{EXTRAS[module]}]'")
    return None


def _needs(key, settings):
    """`(what, module)` when the proposed value of codec setting `key` needs a module."""
    if key.endswith(".compress") and settings.get(key) == "zstd":
        return "zstd compression", "zstandard"
    if key.endswith(".age_recipients") and settings.get(key).strip():
        return "encryption to age recipients", "pyrage"
    if key.endswith(".incremental") and settings.get(key) is True:
        return "incremental copies", "zstandard"
    return None


def codec_problems(settings, changed):
    """One sentence per changed ``offsite.<target>.compress`` (zstd), ``age_recipients`` (set) or
    ``incremental`` (on) whose module is not installed, naming the extra to install; the change
    is refused whole.

    Only a change is checked: a value stored while the module was there stays as it is (the
    copies then fail, and health says why) rather than reading as "no encryption".

    :param settings: the proposed values (`SettingsView`); `changed`: the keys being set.
    """
    problems = []
    for key in changed:
        if not key.startswith("offsite."):
            continue
        need = _needs(key, settings)
        reason = need and missing(need[1])
        if reason:
            problems.append(f"{key}: {need[0]} needs {reason}")
    return problems
