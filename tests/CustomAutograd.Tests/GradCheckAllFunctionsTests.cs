// SPDX-License-Identifier: MIT
using System.Collections.Generic;
using CustomAutograd.Examples;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Every custom function defined by the tests and the example passes GradCheck (and GradGradCheck where its Backward is differentiable).</summary>
[TestFixture]
public sealed class GradCheckAllFunctionsTests
{
    /// <summary>float64 values away from ReLU's kink at 0.</summary>
    private static Tensor AwayFromZero(params long[] shape)
    {
        Tensor r = torch.rand(shape, dtype: ScalarType.Float64) + 0.1;
        Tensor sign = torch.randint(0, 2, shape, dtype: ScalarType.Float64) * 2 - 1;
        return (r * sign).requires_grad_(true);
    }

    private static IEnumerable<TestCaseData> UnaryFunctions()
    {
        yield return new TestCaseData("TestUtil.Relu").Returns(true);
        yield return new TestCaseData("TestUtil.Sigmoid").Returns(true);
        yield return new TestCaseData("Tutorial.MyRelu").Returns(true);
        yield return new TestCaseData("FeatureTests.Cube").Returns(true);
    }

    private static UnaryFunction Lookup(string name) => name switch
    {
        "TestUtil.Relu" => TestUtil.Relu,
        "TestUtil.Sigmoid" => TestUtil.Sigmoid,
        "Tutorial.MyRelu" => Tutorial.MyRelu,
        _ => FeatureTests.Cube,
    };

    [TestCaseSource(nameof(UnaryFunctions))]
    public bool GradCheck_UnaryFunctionOfTheSuite_Passes(string name)
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(Lookup(name), AwayFromZero(3, 4), new GradCheckOptions { RaiseException = false });
        Assert.That(result.Passed, Is.True, () => result.ToString());
        return result.Passed;
    }

    [Test]
    public void GradCheck_MatMulAndSumAndProductAndScale_Pass()
    {
        using var scope = NewDisposeScope();
        var options = new GradCheckOptions { RaiseException = false };
        GradCheckResult mm = GradCheck.Check(TestUtil.MatMul, AwayFromZero(2, 3), AwayFromZero(3, 4), options);
        GradCheckResult sp = GradCheck.Check(TestUtil.SumAndProduct, new[] { AwayFromZero(5), AwayFromZero(5) }, options);
        GradCheckResult scale = GradCheck.Check(x => FeatureTests.Scale.Apply(x, -2.5), AwayFromZero(4), options);
        Assert.That(mm.Passed, Is.True, () => mm.ToString());
        Assert.That(sp.Passed, Is.True, () => sp.ToString());
        Assert.That(scale.Passed, Is.True, () => scale.ToString());
    }

    [Test]
    public void GradGradCheck_DifferentiableBackwards_Pass()
    {
        using var scope = NewDisposeScope();
        var options = new GradCheckOptions { RaiseException = false };
        GradCheckResult cube = GradGradCheck.Check(FeatureTests.Cube, AwayFromZero(4), null, options);
        GradCheckResult sigmoid = GradGradCheck.Check(TestUtil.Sigmoid, AwayFromZero(4), null, options);
        GradCheckResult mm = GradGradCheck.Check(TestUtil.MatMul, AwayFromZero(2, 3), AwayFromZero(3, 2), null, options);
        Assert.That(cube.Passed, Is.True, () => cube.ToString());
        Assert.That(sigmoid.Passed, Is.True, () => sigmoid.ToString());
        Assert.That(mm.Passed, Is.True, () => mm.ToString());
    }
}
