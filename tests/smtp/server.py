"""An SMTP server for tests/it/adapters.rs, on aiosmtpd.

Listens on 127.0.0.1 on a free port and prints `READY <port>` on stdout. Every accepted
message is written to OUT_DIR/<n>.json ({"mail_from", "rcpt_tos", "data", "login"}), written
to a temporary name first so a reader never sees half a file.

Recipients script the answers: `reject...@` gets 550 at RCPT TO, `greylist...@` gets 451.
With --auth USER:PASSWORD, AUTH (PLAIN or LOGIN, no TLS needed) is required and only those
credentials pass; a failed AUTH answers 535.
"""

import argparse
import asyncio
import json
import logging
import os
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("greylist"):
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        login = None
        if isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "login": login,
        }
        path = os.path.join(self.out_dir, f"{self.count:04d}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return f"250 2.0.0 Ok: queued as BELFRY{self.count:04d}"


def main():
    # AUTH without TLS is what these tests exercise; aiosmtpd warns about it at every start.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--auth", help="USER:PASSWORD to require")
    args = parser.parse_args()

    handler = Handler(args.out_dir)
    kwargs = {"decode_data": False, "hostname": "test.smtp.local"}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == user.encode()
                and auth_data.password == password.encode()
            )
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        kwargs.update(
            authenticator=authenticator, auth_required=True, auth_require_tls=False
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, loop=loop, **kwargs), "127.0.0.1", 0)
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    # Ends when the test kills it, or when its stdin closes (the test died).
    loop.add_reader(0, lambda: os.read(0, 4096) or loop.stop())
    loop.run_forever()


if __name__ == "__main__":
    main()
