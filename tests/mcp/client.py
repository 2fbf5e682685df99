"""An MCP client nobody here wrote (the official `mcp` SDK) driving roost's
/mcp: backend/tests/mcp_server.rs runs it and asserts on the JSON it prints.

usage: client.py URL TOKEN SCRIPT_ID OTHER_USERS_SCRIPT_ID
"""

import json
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def dump(result):
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def session_calls(url, token, script_id, others_script_id):
    out = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                init = await session.initialize()
                out["server"] = dump(init.server_info)
                tools = await session.list_tools()
                out["tools"] = {t.name: t.input_schema for t in tools.tools}
                integrations = await session.call_tool("list_integrations", {})
                out["integrations"] = dump(integrations)
                first = integrations.structured_content["integrations"][0]["integrationId"]
                out["docs_id"] = first
                out["docs"] = dump(await session.call_tool("get_integration_docs", {"ids": [first]}))
                out["index"] = dump(await session.call_tool("get_integration_docs", {}))
                out["unknown_docs"] = dump(
                    await session.call_tool("get_integration_docs", {"ids": ["no-such-thing"]})
                )
                out["scripts"] = dump(await session.call_tool("list_scripts", {}))
                run = await session.call_tool(
                    "run_script", {"script_id": script_id, "payload": {"from": "mcp"}}
                )
                out["run"] = dump(run)
                run_id = run.structured_content["run_id"]
                out["runs"] = dump(await session.call_tool("list_runs", {"script_id": script_id}))
                out["logs"] = dump(await session.call_tool("get_run_logs", {"run_id": run_id}))
                out["others_run"] = dump(
                    await session.call_tool("run_script", {"script_id": others_script_id})
                )
                out["bad_status"] = dump(await session.call_tool("list_runs", {"status": "sleepy"}))
    return out


async def refused(url):
    """The same client without a token: the server must not let it in."""
    try:
        with anyio.fail_after(20):
            async with streamable_http_client(url) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
        return {"refused": False}
    except BaseException as err:  # the SDK raises from a task group
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        return {"refused": True, "error": repr(err)[:500]}


async def main():
    url, token, script_id, others = sys.argv[1:5]
    out = await session_calls(url, token, script_id, others)
    out["no_token"] = await refused(url)
    print(json.dumps(out))


anyio.run(main)
