"""Report writers: results.json, remediation lookup; pytest-html and JUnit come from their plugins."""
