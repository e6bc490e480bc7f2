"""Operator-editable notification templates (string.Template, ``$name``).

Each kind has ``<kind>.txt`` (first line ``Subject: …``, a blank line, the plain
body) and ``<kind>.html``. A directory given by ``DOCEX_MAIL_TEMPLATES_DIR``
overrides any of these files one by one.
"""
