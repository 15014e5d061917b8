// SPDX-License-Identifier: MIT
using System;
using System.Linq;
using CustomAutograd.Examples.PyTorchPorts;
using NUnit.Framework;
using static CustomAutograd.Tests.GradCheckTestFunctions;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// The custom functions of PyTorch's documentation as examples/PyTorchPorts writes them (no <c>!</c>, no array
/// indexing): forward values and gradients equal the built-in operations' in float64, and GradCheck and
/// GradGradCheck pass through the typed overloads.
/// </summary>
[TestFixture]
public sealed class PyTorchDocsExamplesTests
{
    /// <summary>
    /// Runs <paramref name="custom"/> and <paramref name="builtIn"/> on copies of <paramref name="leaves"/> (same
    /// values, same requires_grad), backward with one random output gradient, and asserts equal outputs and equal
    /// gradients, a leaf without gradient in one having none in the other.
    /// </summary>
    private static void AssertSameAsBuiltIn(Func<Tensor[], Tensor> custom, Func<Tensor[], Tensor> builtIn, params Tensor[] leaves)
    {
        Tensor gradOutput = randn_like(builtIn(leaves).detach());
        (Tensor output, Tensor?[] grads) = OutputAndGradients(custom, gradOutput, leaves);
        (Tensor expected, Tensor?[] expectedGrads) = OutputAndGradients(builtIn, gradOutput, leaves);

        Assert.That(output.allclose(expected, rtol: 1e-12, atol: 1e-12), Is.True, "forward");
        for (int i = 0; i < leaves.Length; i++)
        {
            if (expectedGrads[i] is not { } e)
                Assert.That(grads[i], Is.Null, $"input {i} gets no gradient");
            else
                Assert.That(grads[i] is { } g && g.allclose(e, rtol: 1e-12, atol: 1e-12), Is.True, $"gradient of input {i}");
        }
    }

    private static (Tensor Output, Tensor?[] Grads) OutputAndGradients(Func<Tensor[], Tensor> f, Tensor gradOutput, Tensor[] leaves)
    {
        Tensor[] copies = leaves.Select(l => l.detach().clone().requires_grad_(l.requires_grad)).ToArray();
        Tensor output = f(copies);
        Autograd.Backward(output, gradOutput);
        return (output.detach(), copies.Select(c => c.grad).ToArray());
    }

    private static Tensor[] LinearInputs() => new[] { Float64(new long[] { 4, 5 }), Float64(new long[] { 3, 5 }), Float64(new long[] { 3 }) };

    // ---------------------------------------------------------------- LinearFunction

    [Test]
    public void LinearFunction_WithBias_MatchesBuiltInLinear()
    {
        using var scope = NewDisposeScope();
        AssertSameAsBuiltIn(xs => PortedFunctions.Linear.Apply(xs[0], xs[1], xs[2]),
                            xs => nn.functional.linear(xs[0], xs[1], xs[2]), LinearInputs());
    }

    [Test]
    public void LinearFunction_WithoutBias_MatchesBuiltInLinear()
    {
        using var scope = NewDisposeScope();
        Tensor[] inputs = LinearInputs();
        AssertSameAsBuiltIn(xs => PortedFunctions.Linear.Apply(xs[0], xs[1]),
                            xs => nn.functional.linear(xs[0], xs[1]), inputs[0], inputs[1]);
    }

    [Test]
    public void LinearFunction_OnlyWeightRequiresGrad_GivesOnlyTheWeightsGradient()
    {
        using var scope = NewDisposeScope();
        Tensor[] inputs = LinearInputs();
        inputs[0].requires_grad_(false);
        inputs[2].requires_grad_(false);
        AssertSameAsBuiltIn(xs => PortedFunctions.Linear.Apply(xs[0], xs[1], xs[2]),
                            xs => nn.functional.linear(xs[0], xs[1], xs[2]), inputs);
    }

    [Test]
    public void LinearFunction_WithBias_PassesGradCheckAndGradGradCheck()
    {
        using var scope = NewDisposeScope();
        Tensor[] inputs = LinearInputs();

        GradCheckResult first = GradCheck.Check(PortedFunctions.Linear, inputs[0], inputs[1], inputs[2]);
        GradCheckResult second = GradGradCheck.Check(PortedFunctions.Linear, inputs[0], inputs[1], inputs[2]);

        Assert.That((first.Passed, first.DifferentiableInputCount), Is.EqualTo((true, 3)), first.ToString);
        Assert.That((second.Passed, second.DifferentiableInputCount), Is.EqualTo((true, 4)), second.ToString);
    }

    [Test]
    public void LinearFunction_WithoutBias_PassesGradCheckAndGradGradCheck()
    {
        using var scope = NewDisposeScope();
        Tensor[] inputs = LinearInputs();

        GradCheckResult first = GradCheck.Check(PortedFunctions.Linear, inputs[0], inputs[1], null);
        GradCheckResult second = GradGradCheck.Check(PortedFunctions.Linear, inputs[0], inputs[1], null);

        Assert.That((first.Passed, first.InputCount, first.DifferentiableInputCount), Is.EqualTo((true, 3, 2)), first.ToString);
        Assert.That((second.Passed, second.DifferentiableInputCount), Is.EqualTo((true, 3)), second.ToString);
    }

    // ---------------------------------------------------------------- MulConstant, LegendrePolynomial3, Exp

    [Test]
    public void MulConstant_MatchesMultiplicationAndPassesTheChecks()
    {
        using var scope = NewDisposeScope();
        Tensor t = Float64(new long[] { 2, 3 });

        AssertSameAsBuiltIn(xs => PortedFunctions.MulConstant.Apply(xs[0], 5.0), xs => xs[0] * 5.0, t);
        Assert.That(GradCheck.Check(PortedFunctions.MulConstant, t, 5.0).Passed, Is.True);
        Assert.That(GradGradCheck.Check(PortedFunctions.MulConstant, t, -0.5).Passed, Is.True);
    }

    [Test]
    public void LegendrePolynomial3_MatchesThePolynomialAndPassesTheChecks()
    {
        using var scope = NewDisposeScope();
        Tensor t = Float64(new long[] { 7 });

        AssertSameAsBuiltIn(xs => PortedFunctions.LegendrePolynomial3.Apply(xs[0]), xs => 0.5 * (5 * xs[0].pow(3) - 3 * xs[0]), t);
        Assert.That(GradCheck.Check(PortedFunctions.LegendrePolynomial3, t).Passed, Is.True);
        Assert.That(GradGradCheck.Check(PortedFunctions.LegendrePolynomial3, t).Passed, Is.True);
    }

    [Test]
    public void Exp_SavingItsOutput_MatchesExpAndPassesTheChecks()
    {
        using var scope = NewDisposeScope();
        Tensor t = Float64(new long[] { 3, 2 });

        AssertSameAsBuiltIn(xs => PortedFunctions.Exp.Apply(xs[0]), xs => xs[0].exp(), t);
        Assert.That(GradCheck.Check(PortedFunctions.Exp, t).Passed, Is.True);
        Assert.That(GradGradCheck.Check(PortedFunctions.Exp, t).Passed, Is.True);
    }
}
