"""`/tempadmin help` in Bolt for Python, for benches/help_throughput.rs.

The bench starts this with the signing secret of its Slack simulator and
fires the same signed slash command at it as at tempadmin. The app is as
small as Bolt allows: request verification on (the signature and the
timestamp, as tempadmin checks them), one command handler that acks the
help text tempadmin answers with its default policy, and Bolt's built-in
HTTP server (`App.start`, http.server underneath, which binds every
interface). `token_verification_enabled=False` skips the `auth.test` call
at start; Bolt still makes it once, at the first request, against
SLACK_API_URL: the bench's loopback Slack simulator, so nothing leaves the
machine.

Bolt's defaults otherwise, as a minimal Bolt app has them: the handler
runs on Bolt's thread pool while the request's thread waits for its ack
(checking every 10 ms until it is there). With BOLT_INLINE=1 in the
environment the handler runs inline instead (`process_before_response`,
meant for functions as a service), which is Bolt's fastest way to answer.

One change to the server as shipped: its listen backlog. http.server
keeps socketserver's default of 5 pending connections; with more clients
than that connecting at once, Linux drops their SYNs and they retry after
1, 3, 7 … seconds, which would measure TCP's retry timer rather than Bolt.
The server still handles one request at a time, as shipped.

Environment: PORT, SLACK_SIGNING_SECRET, BOT_TOKEN, SLACK_API_URL. (Not
SLACK_BOT_TOKEN: Bolt reads that one itself, beside the client given here.)
"""

import http.server
import logging
import os

from slack_bolt import App
from slack_sdk import WebClient

# tempadmin's answer to `/tempadmin help` with the default policy
# (src/wording.rs, help_text), so both servers send the same bytes' worth.
HELP = (
    "*tempadmin* gives you temporary administrator rights on your own computer"
    " after an approver agrees.\n"
    "\u2022 `/tempadmin 30m install printer driver`: ask for 30m of admin rights"
    " (between 5m and 4h)\n"
    "\u2022 `/tempadmin 1h30m MY-LAPTOP reason`: name the computer when you have several\n"
    "\u2022 `/tempadmin status`: your open requests\n"
    "\u2022 `/tempadmin revoke`: end your admin rights now, or withdraw a pending request\n"
    "\u2022 `/tempadmin help`: this text"
)

logging.basicConfig(level=logging.WARNING)
http.server.HTTPServer.request_queue_size = 1024

app = App(
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    client=WebClient(
        token=os.environ["BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    ),
    token_verification_enabled=False,
    process_before_response=os.environ.get("BOLT_INLINE") == "1",
)


@app.command("/tempadmin")
def tempadmin(ack):
    ack(HELP)


if __name__ == "__main__":
    app.start(
        port=int(os.environ["PORT"]),
        path="/slack/commands",
        http_server_logger_enabled=False,
    )
