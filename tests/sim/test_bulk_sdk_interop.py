"""Interoperability: Zoho's official Python SDK's bulk-write operations against the simulator.

The SDK (zohocrmsdk2-0) reads the org's zgid, uploads a zipped CSV with the
`feature` and `X-CRM-ORG` headers, creates an insert job, reads its details
and downloads its result: the shapes it parses are the ones the simulator
serves. The simulator runs in its own thread (the SDK is synchronous), as in
test_sdk_interop.py, whose fixture and helpers this module reuses.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest

from syncengine.sim import SimHandle
from tests.sim.bulk_helpers import ZGID, zipped_csv
from tests.sim.test_sdk_interop import (
    MemoryTokenStore,
    SimulatorDataCenter,
    threaded_sim,  # noqa: F401 - the fixture
)

zcrm = pytest.importorskip("zcrmsdk.src.com.zoho.crm.api.initializer")
from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken  # noqa: E402
from zcrmsdk.src.com.zoho.api.logger import Logger  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.bulk_write import (  # noqa: E402
    APIException,
    BulkWriteOperations,
    BulkWriteResponse,
    FieldMapping,
    FileBodyWrapper,
    RequestWrapper,
    Resource,
    SuccessResponse,
)
from zcrmsdk.src.com.zoho.crm.api.bulk_write.bulk_write_operations import (  # noqa: E402
    UploadFileHeader,
)
from zcrmsdk.src.com.zoho.crm.api.header_map import HeaderMap  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.org import OrgOperations  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.util import Choice, StreamWrapper  # noqa: E402

Initializer = zcrm.Initializer


def _initialise(sim: SimHandle, tmp_path: Path) -> None:
    Initializer.initialize(
        user=UserSignature("sync@example.org"),
        environment=SimulatorDataCenter(sim.base_url).environment(),
        token=OAuthToken(
            client_id="demo-client", client_secret="demo-secret", refresh_token="demo-refresh"
        ),
        store=MemoryTokenStore(),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(tmp_path),
        logger=Logger.get_instance(Logger.Levels.INFO, str(tmp_path / "sdk.log")),
    )


def _upload(path: Path, zgid: str) -> object:
    """Upload through the SDK; the file is opened here (the SDK would leave it open)."""
    headers = HeaderMap()
    headers.add(UploadFileHeader.feature, "bulk-write")
    headers.add(UploadFileHeader.x_crm_org, zgid)
    with path.open("rb") as stream:
        body = FileBodyWrapper()
        body.set_file(StreamWrapper(name=path.name, stream=stream))
        return BulkWriteOperations().upload_file(body, headers).get_object()


def _insert_job(file_id: str) -> object:
    resource = Resource()
    resource.set_type(Choice("data"))
    resource.set_module("Leads")
    resource.set_file_id(file_id)
    mappings = []
    for index, name in enumerate(["Email", "Last_Name", "Company"]):
        mapping = FieldMapping()
        mapping.set_api_name(name)
        mapping.set_index(index)
        mappings.append(mapping)
    resource.set_field_mappings(mappings)
    request = RequestWrapper()
    request.set_operation(Choice("insert"))
    request.set_resource([resource])
    return BulkWriteOperations().create_bulk_write_job(request).get_object()


def test_sdk_uploads_creates_polls_and_downloads(threaded_sim: SimHandle, tmp_path: Path) -> None:  # noqa: F811
    """The SDK's four bulk-write operations: one row added, one refused, result read back."""
    _initialise(threaded_sim, tmp_path)
    org = OrgOperations().get_organization().get_object().get_org()[0]
    assert org.get_zgid() == ZGID
    path = tmp_path / "leads.zip"
    path.write_bytes(
        zipped_csv(
            [
                ["Email", "Last_Name", "Company"],
                ["sdk@example.org", "Sdk", "Acme"],
                ["not-an-email", "Bad", "Acme"],
            ]
        )
    )

    uploaded = _upload(path, org.get_zgid())
    assert isinstance(uploaded, SuccessResponse)
    assert uploaded.get_code().get_value() == "FILE_UPLOAD_SUCCESS"
    file_id = str(uploaded.get_details()["file_id"])

    created = _insert_job(file_id)
    assert isinstance(created, SuccessResponse)
    job_id = int(created.get_details()["id"])

    details = BulkWriteOperations().get_bulk_write_job_details(job_id).get_object()
    for _ in range(50):
        if details.get_status() == "COMPLETED":
            break
        time.sleep(0.01)
        details = BulkWriteOperations().get_bulk_write_job_details(job_id).get_object()
    assert isinstance(details, BulkWriteResponse)
    assert details.get_status() == "COMPLETED"
    file = details.get_resource()[0].get_file()
    assert (file.get_added_count(), file.get_skipped_count(), file.get_total_count()) == (1, 1, 2)

    url = details.get_result().get_download_url()
    result = BulkWriteOperations().download_bulk_write_result(url).get_object()
    assert isinstance(result, FileBodyWrapper)
    with zipfile.ZipFile(io.BytesIO(result.get_file().get_stream().content)) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    lines = text.splitlines()
    assert lines[0] == "Email,Last_Name,Company,STATUS,RECORD_ID,ERRORS"
    assert lines[1].startswith("sdk@example.org,Sdk,Acme,ADDED,")
    assert lines[2] == "not-an-email,Bad,Acme,SKIPPED,,INVALID_DATA-Email"
    assert len(threaded_sim.state.store.records["Leads"]) == 1


def test_sdk_reads_bulk_errors(threaded_sim: SimHandle, tmp_path: Path) -> None:  # noqa: F811
    """An unknown file id comes back to the SDK as its APIException, code INVALID_FILE_ID."""
    _initialise(threaded_sim, tmp_path)
    refused = _insert_job("4876876000005999999")
    assert isinstance(refused, APIException)
    assert refused.get_code().get_value() == "INVALID_FILE_ID"
