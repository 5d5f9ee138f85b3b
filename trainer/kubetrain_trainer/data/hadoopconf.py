"""The Hadoop client configuration, checked before the first NameNode call.

hdfs-native reads the same files, but reports a broken one vaguely
("XmlParseError(UnknownToken(...))", "No NameNode hosts found") and without
saying which file or key. A job with a bad config should fail at once,
naming what to fix, as a user error (exit 2) and never as an outage (138).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

from kubetrain_trainer.data.errors import DataError

CONF_DIR_ENV = "HADOOP_CONF_DIR"
CORE_SITE, HDFS_SITE = "core-site.xml", "hdfs-site.xml"


class HadoopConfigError(DataError):
    """The Hadoop configuration is missing, unreadable or lacks a key the URI needs."""


def conf_dir(env: dict[str, str] | None = None) -> str | None:
    """Where hdfs-native looks: HADOOP_CONF_DIR, else $HADOOP_HOME/etc/hadoop."""
    env = dict(os.environ if env is None else env)
    if env.get(CONF_DIR_ENV):
        return env[CONF_DIR_ENV]
    home = env.get("HADOOP_HOME")
    return os.path.join(home, "etc", "hadoop") if home else None


def read(directory: str | None) -> dict[str, str]:
    """Properties of core-site.xml and hdfs-site.xml in `directory` (either may be absent).

    Raises:
        HadoopConfigError: the directory does not exist, or a file is not Hadoop XML.
    """
    if not directory:
        return {}
    if not Path(directory).is_dir():
        raise HadoopConfigError(f"{CONF_DIR_ENV}={directory}: no such directory")
    props: dict[str, str] = {}
    for name in (CORE_SITE, HDFS_SITE):
        path = Path(directory, name)
        if not path.is_file():
            continue
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as err:
            raise HadoopConfigError(f"{path}: not valid XML ({err})") from err
        if root.tag != "configuration":
            raise HadoopConfigError(f"{path}: root element is <{root.tag}>, not <configuration>")
        for prop in root.iter("property"):
            key, value = prop.findtext("name"), prop.findtext("value")
            if key and value is not None:
                props[key.strip()] = value.strip()
    return props


def problem(base: str, props: dict[str, str], directory: str | None) -> str | None:
    """Why `base` (`hdfs://authority`, `viewfs://cluster`) cannot be resolved, or None.

    Mirrors hdfs-native: no authority means fs.defaultFS; an authority
    without a port is an HA nameservice; viewfs needs a mount table with a
    fallback link.
    """

    def where(name: str) -> str:
        return f"{directory}/{name}" if directory else f"{name} ({CONF_DIR_ENV} is not set)"

    parts = urlsplit(base)
    if not parts.netloc:
        default = props.get("fs.defaultFS")
        if not default:
            return (
                f"{base}/: the URI names no NameNode and fs.defaultFS is not set in "
                f"{where(CORE_SITE)}"
            )
        target = urlsplit(default)
        if target.scheme != parts.scheme or not target.netloc:
            return (
                f"{base}/: fs.defaultFS={default} in {where(CORE_SITE)} is not a "
                f"{parts.scheme}://authority URI"
            )
        return problem(f"{target.scheme}://{target.netloc}", props, directory)
    if parts.scheme == "viewfs":
        # hdfs-native resolves every path outside the links through the fallback.
        fallback = f"fs.viewfs.mounttable.{parts.netloc}.linkFallback"
        if fallback not in props:
            return (
                f"{base}: no mount table for {parts.netloc!r}: {fallback} is not set in "
                f"{where(CORE_SITE)} (hdfs-native needs it besides the .link./path entries)"
            )
        return None
    if parts.port is not None:
        return None
    ns = parts.netloc
    key = f"dfs.ha.namenodes.{ns}"
    if key not in props:
        known = props.get("dfs.nameservices") or "none"
        return (
            f"{base}: no port, so {ns!r} must be a nameservice, but {key} is not set in "
            f"{where(HDFS_SITE)} (dfs.nameservices: {known}); for one NameNode write "
            f"hdfs://{ns}:8020"
        )
    for nn in (n.strip() for n in props[key].split(",") if n.strip()):
        rpc = f"dfs.namenode.rpc-address.{ns}.{nn}"
        if rpc not in props:
            return f"{base}: {rpc} is not set in {where(HDFS_SITE)} ({key}={props[key]})"
    return None


def check(base: str) -> dict[str, str]:
    """The site properties, once they are known to resolve `base`.

    Raises:
        HadoopConfigError: naming the file or key to fix.
    """
    directory = conf_dir()
    props = read(directory)
    reason = problem(base, props, directory)
    if reason:
        raise HadoopConfigError(reason)
    return props
