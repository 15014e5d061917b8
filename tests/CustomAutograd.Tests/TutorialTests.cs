// SPDX-License-Identifier: MIT
using System.IO;
using System.Linq;
using CustomAutograd.Examples;
using NUnit.Framework;

namespace CustomAutograd.Tests;

/// <summary>The example reproduces the tutorial's trajectory.</summary>
[TestFixture]
public sealed class TutorialTests
{
    [Test]
    public void Tutorial_500StepsOnCpu_SixStepLinesAndFinalLossBelow1e3()
    {
        var output = new StringWriter();
        var losses = Tutorial.Run(new TutorialOptions("cpu", 7, 500), output);

        string[] lines = output.ToString().Split('\n', System.StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Select(l => l.Split(" : ")[0]), Is.EqualTo(new[]
        {
            "Step: 1", "Step: 100", "Step: 200", "Step: 300", "Step: 400", "Step: 500",
        }));
        Assert.That(losses, Has.Count.EqualTo(500));
        Assert.That(losses[0], Is.GreaterThan(1e6));
        Assert.That(losses[^1], Is.LessThan(1e-3));
    }

    [TestCase(31362752.0, "31362752")]
    [TestCase(689.36138916015625, "689.3614")]
    [TestCase(4.5776593e-05, "4.577659e-05")]
    [TestCase(0.00604859, "0.00604859")]
    public void RFormat_Number_MatchesRsCat(double value, string expected)
    {
        Assert.That(RFormat.Number(value), Is.EqualTo(expected));
    }
}
