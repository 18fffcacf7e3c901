"""The look of every HTML page the project writes: one stylesheet, no network.

The conformance report uses it today; the dashboard (issue 13) is meant to import the same
`CSS` so the two read as one tool. Colours are the verdicts' (pass, fail, not checked).
"""

CSS = """
:root { --pass: #1a7f37; --fail: #cf222e; --skip: #6e7781; --ink: #1f2328; --line: #d0d7de;
        --bg: #ffffff; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink);
       background: var(--bg); margin: 0 auto; max-width: 72rem; padding: 1.5rem; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
h2 { font-size: 1.1rem; margin: 2rem 0 .5rem; }
.summary { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
           padding: .75rem 1rem; }
.summary p { margin: .2rem 0; }
table { border-collapse: collapse; width: 100%; margin-top: .5rem; }
th, td { border-bottom: 1px solid var(--line); padding: .35rem .5rem; text-align: left;
         vertical-align: top; }
th { background: var(--soft); }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: .6rem;
      overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.verdict { font-weight: 600; white-space: nowrap; }
.PASS { color: var(--pass); } .FAIL { color: var(--fail); } .NOT-CHECKED { color: var(--skip); }
.partial { color: var(--fail); font-weight: 600; }
"""
