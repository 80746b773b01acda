from __future__ import annotations

import ipaddress
import os
import subprocess
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a self-signed TLS certificate for ALLOWED_HOSTS in the data folder, once."

    def handle(self, *args: Any, **options: Any) -> None:
        folder = settings.DATA_DIR / "tls"
        cert, key = folder / "cert.pem", folder / "key.pem"
        if cert.exists() and key.exists():
            self.stdout.write(f"Using the certificate in {folder}")
            return
        names = [h.strip("[]") for h in settings.ALLOWED_HOSTS if h not in {"*", ".localhost"}]
        sans = []
        for name in names or ["localhost"]:
            try:
                sans.append(f"IP:{ipaddress.ip_address(name)}")
            except ValueError:
                sans.append(f"DNS:{name.lstrip('.')}")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "825",
                    "-subj",
                    "/CN=Tuner Dashboard",
                    "-addext",
                    f"subjectAltName={','.join(sans)}",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ],
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise CommandError(f"openssl could not make a certificate: {exc}") from None
        os.chmod(key, 0o600)
        self.stdout.write(f"Made a self-signed certificate for {', '.join(sans)} in {folder}")
