"""An MCP client nobody here wrote (the official `mcp` SDK) driving roost's
/mcp: backend/tests/mcp_server.rs runs it and asserts on the JSON it prints.

usage: client.py URL TOKEN SCRIPT_ID OTHER_USERS_SCRIPT_ID COMPONENTS_DIR READ_ONLY_TOKEN

COMPONENTS_DIR holds the example guests to deploy, base64, one file each
(`gmail-digest.b64`, `hello.b64`, `event-echo.b64`).
"""

import json
import os
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def dump(result):
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def component(components, name):
    with open(os.path.join(components, f"{name}.b64")) as f:
        return f.read()


async def session_calls(url, token, script_id, others_script_id, components):
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
                page1 = await session.call_tool("list_runs", {"limit": 1})
                out["page1"] = dump(page1)
                cursor = page1.structured_content["next_cursor"]
                out["page2"] = dump(
                    await session.call_tool("list_runs", {"limit": 1, "cursor": cursor})
                )
                out["bad_cursor"] = dump(await session.call_tool("list_runs", {"cursor": "nope!"}))

                gmail = component(components, "gmail-digest")
                out["deploy_gmail"] = dump(
                    await session.call_tool(
                        "deploy_script", {"name": "digest", "component_base64": gmail}
                    )
                )
                hello = await session.call_tool(
                    "deploy_script",
                    {"name": "hello-again", "component_base64": component(components, "hello")},
                )
                out["deploy_hello"] = dump(hello)
                out["inspect"] = dump(
                    await session.call_tool(
                        "inspect_script", {"script_id": hello.structured_content["script_id"]}
                    )
                )
                out["inspect_others"] = dump(
                    await session.call_tool("inspect_script", {"script_id": others_script_id})
                )
                out["deploy_echo"] = dump(
                    await session.call_tool(
                        "deploy_script",
                        {"name": "echo", "component_base64": component(components, "event-echo")},
                    )
                )
                out["event"] = dump(
                    await session.call_tool(
                        "send_event", {"type": "order.created", "payload": {"order": 7}}
                    )
                )
                out["bad_event"] = dump(
                    await session.call_tool("send_event", {"type": "no..type"})
                )
                # Over the server's payload limit (the test sets 64 KiB).
                big = {"blob": "x" * 100_000}
                out["big_event"] = dump(
                    await session.call_tool(
                        "send_event", {"type": "order.created", "payload": big}
                    )
                )
                out["big_run"] = dump(
                    await session.call_tool(
                        "run_script", {"script_id": script_id, "payload": big}
                    )
                )
                out["connections"] = dump(await session.call_tool("connections", {}))
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


async def read_only_calls(url, token, script_id, components):
    """A token with only the `read` scope: it reads, and each tool that
    writes is refused."""
    out = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                out["scripts"] = dump(await session.call_tool("list_scripts", {}))
                out["connections"] = dump(await session.call_tool("connections", {}))
                out["run"] = dump(await session.call_tool("run_script", {"script_id": script_id}))
                out["event"] = dump(
                    await session.call_tool("send_event", {"type": "order.created"})
                )
                out["deploy"] = dump(
                    await session.call_tool(
                        "deploy_script",
                        {"name": "nope", "component_base64": component(components, "hello")},
                    )
                )
    return out


async def main():
    url, token, script_id, others, components, reader = sys.argv[1:7]
    out = await session_calls(url, token, script_id, others, components)
    out["no_token"] = await refused(url)
    out["read_only"] = await read_only_calls(url, reader, script_id, components)
    print(json.dumps(out))


anyio.run(main)
