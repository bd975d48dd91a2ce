"""The upload cap: a request body over IMPORT_MAX_UPLOAD_BYTES is refused before it is
read, so a huge upload costs neither memory nor disk.

Install it with ``cap_uploads(request)`` before anything reads the body (Django's CSRF
check reads it: a page view doing this is ``csrf_exempt`` and checks CSRF itself after).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

from annotation.prompts.import_jobs import upload_too_large_message

# Room for the form's other fields and the multipart framing around the file.
SLACK = 64 * 1024


class UploadCap(FileUploadHandler):
    """First of the request's upload handlers. A body whose Content-Length is over the cap
    (plus SLACK) is not read at all; otherwise the file's bytes are counted as they arrive
    and the upload stops at the first chunk past the cap. Either way ``refused`` is set
    and the request has no file."""

    def __init__(self, request: HttpRequest | None, cap: int) -> None:
        super().__init__(request)
        self.cap = cap
        self.refused = False

    # The stubs say ``boundary`` is a str; Django passes the multipart parser's bytes.
    def handle_raw_input(  # type: ignore[override]
        self,
        input_data: Any,
        META: dict[str, Any],  # noqa: N803 (Django's name)
        content_length: int,
        boundary: bytes,
        encoding: str | None = None,
    ) -> tuple[QueryDict, MultiValueDict[str, UploadedFile[Any]]] | None:
        if content_length > self.cap + SLACK:
            self.refused = True
            return QueryDict(encoding=encoding), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.cap:
            self.refused = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

    @property
    def message(self) -> str:
        return upload_too_large_message()


def cap_uploads(request: HttpRequest) -> UploadCap:
    handler = UploadCap(request, settings.IMPORT_MAX_UPLOAD_BYTES)
    request.upload_handlers.insert(0, handler)
    return handler
