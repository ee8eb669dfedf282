"""Sampling arms: what happens to the condition or the guidance at sampling time (docs/design.md, section 2).

The shipped arms: one module per arm, registered with `@register_arm` under the module's name, one YAML per arm in
conf/arms/ (an arm of one's own may live in any importable module: docs/adding-a-mode.md). The sweep crosses each
mode with every arm that applies to it and every guidance scale.
"""
