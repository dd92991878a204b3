"""Pure parsers: tool or sysfs text in, typed values out, ``ParseError`` (with the raw text) otherwise.

They never print, read files or shell out; collectors fetch the text, checks judge the values.
"""
