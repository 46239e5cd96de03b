"""Labelled broken snippets for :meth:`lark.UnexpectedInput.match_examples`.

When a parse fails, lark re-parses each snippet and picks the label whose
failure happens in the same parser state, so the message describes the
mistake in the user's words rather than in token names.
"""

from __future__ import annotations

SYNTAX_EXAMPLES: dict[tuple[str, str], list[str]] = {
    (
        "missing '=' in an assignment",
        "write entries as 'key = value', e.g. 'weight = 1.0'",
    ): [
        "task a: classify(d) { weight 1 }",
        "train { epochs 3 }",
        "task a: classify(d) { head linear }",
    ],
    (
        "missing ':' between the task name and its kind",
        "write 'task NAME: KIND(DATASET) { ... }', e.g. 'task pets: classify(pets_data)'",
    ): [
        "task a classify(d)",
        "task a = classify(d)",
    ],
    (
        "a backbone or dataset needs '= source(...)'",
        "write 'backbone trunk = timm(\"resnet18\")' or 'dataset d = folder(\"path\")'",
    ): [
        "backbone trunk timm(\"resnet18\")",
        "dataset d folder(\"x\")",
        "backbone trunk: timm(\"resnet18\")",
        "dataset d: folder(\"x\")",
    ],
    (
        "unclosed block: '{' has no matching '}'",
        "add '}' after the block's last entry",
    ): [
        "task a: classify(d) { weight = 1",
        "train { epochs = 3",
        "train { phase p { epochs = 3 }",
    ],
    (
        "unclosed call: '(' has no matching ')'",
        "add ')' after the last argument",
    ): [
        "task a: classify(d { }",
        "backbone b = timm(\"x\"",
        "task a: classify(d) { head = linear(pool = avg }",
    ],
    (
        "unclosed list: '[' has no matching ']'",
        "add ']' after the last item",
    ): [
        "train { phase p { freeze = [a, b } }",
        "task a: classify(d) { classes = [x, y }",
    ],
    (
        "a value is missing after '='",
        "give a value: a number, a \"string\", a name, a list [...] or a call kind(...)",
    ): [
        "task a: classify(d) { weight = }",
        "train { epochs = }",
        "let x =",
        "task a: classify(d) { weight = ; }",
    ],
    (
        "expected a statement",
        "statements start with: model, let, input, backbone, neck, dataset, task or train",
    ): [
        "foo",
        "modle x",
        "tasks a: classify(d)",
        "weight = 1",
        "model x\nweight = 1",
    ],
    (
        "'input' needs a shape like 3x224x224",
        "write channels x height x width, e.g. 'input 3x224x224'",
    ): [
        "input 224",
        "input x",
        "input \"3x224x224\"",
        "input 3 x 224 x 224",
    ],
    (
        "a task's kind must be a call such as classify(dataset)",
        "write e.g. 'task pets: classify(pets_data)'",
    ): [
        "task a: classify",
        "task a: classify { }",
        "task a: 3",
    ],
    (
        "arguments must be separated by ','",
        "write e.g. 'mlp(512, dropout = 0.2)'",
    ): [
        "task a: classify(d) { head = mlp(512 dropout = 0.2) }",
        "task a: classify(d) { head = linear(pool = avg dropout = 0.2) }",
        "backbone b = timm(\"x\" pretrained = imagenet)",
    ],
    (
        "list items must be separated by ','",
        "write e.g. 'classes = [cat, dog]'",
    ): [
        "task a: classify(d) { classes = [x y] }",
        "task a: classify(d) { classes = [x, \"y\" \"z\"] }",
        "train { phase p { freeze = [a.stage1 b] } }",
    ],
}
