// SPDX-License-Identifier: MIT
// The R torch tutorial "new autograd functions", ported: a two-layer network whose ReLU is a custom
// autograd function with a hand-written backward, trained by plain gradient descent.
using System;
using System.Collections.Generic;
using CustomAutograd.Examples;
using Spectre.Console;

TutorialOptions? options = TutorialOptions.Parse(args);
if (options is null)
    return args.Length > 0 && args[0] is "-h" or "--help" ? 0 : 2;

IReadOnlyList<double> losses;
if (options.Progress && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
{
    // A live progress bar on a terminal only; redirected output gets exactly the six step lines.
    losses = AnsiConsole.Progress()
        .AutoClear(true)
        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
        .Start(ctx =>
        {
            ProgressTask task = ctx.AddTask("training", maxValue: options.Steps);
            return Tutorial.Run(options, new AnsiConsoleWriter(), _ => task.Increment(1));
        });
}
else
{
    losses = Tutorial.Run(options, Console.Out);
}

if (options.PlotPath is { } path)
{
    LossPlot.Save(losses, path, $"Two-layer net with a custom ReLU ({options.Steps} steps, seed {options.Seed})");
    Console.Error.WriteLine($"loss curve written to {path}");
}
return 0;
