// SPDX-License-Identifier: MIT
// The R torch tutorial "new autograd functions", ported: a two-layer network whose ReLU is a custom
// autograd function with a hand-written backward, trained by plain gradient descent.
using System;
using CustomAutograd.Examples;

TutorialOptions? options = TutorialOptions.Parse(args);
if (options is null)
    return args.Length > 0 && args[0] is "-h" or "--help" ? 0 : 2;

Tutorial.Run(options, Console.Out);
return 0;
