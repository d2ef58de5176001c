"""Request bodies for ``POST /invocations`` and the scoring server's answers to bad ones.

MLflow 3's scoring server accepts a JSON object with exactly one of the keys in :data:`ACCEPTED_FORMATS`
(or CSV with ``text/csv``); MLflow 1's bare ``{"columns": ..., "data": ...}`` gets HTTP 400.
"""

from __future__ import annotations

import requests

from .exceptions import ACCEPTED_PAYLOAD_FORMATS, BadPayloadError

ACCEPTED_FORMATS = ACCEPTED_PAYLOAD_FORMATS


def to_payload(data) -> dict:
    """The JSON payload for ``data``: a DataFrame becomes ``dataframe_split``, a list of row dicts
    ``dataframe_records``, a dict is taken as a ready payload; anything else raises :class:`BadPayloadError`."""
    if isinstance(data, dict):
        return data
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a DataFrame, without importing pandas
        return {"dataframe_split": {"columns": [str(c) for c in data.columns], "data": data.values.tolist()}}
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return {"dataframe_records": data}
    raise BadPayloadError(
        "not sent",
        f"cannot build a payload from a {type(data).__name__}; "
        "pass a DataFrame, a list of row dicts, or a payload dict",
    )


def server_message(answer: requests.Response) -> str:
    """The scoring server's explanation of an error answer (its JSON ``message``, else the body)."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text.strip()[:2000]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)[:2000]
